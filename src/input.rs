//! Bounded reading of what users point concierge at: a config or rules file,
//! a JSON-lines history or batch, a reply on stdin. Nothing is read past its
//! limit (`replay /dev/zero` fails at once, not after filling memory; a
//! config, rules or template file must be a regular file), and
//! the error says which file, which line, and what the limit is.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The largest config, rules or template file read.
pub const MAX_FILE: u64 = 1 << 20;
/// The longest line of a JSON-lines file (a history, a batch, a corpus).
pub const MAX_LINE: u64 = 1 << 20;

/// `path`'s text, at most `max` bytes of valid UTF-8. Only a regular file:
/// a device or pipe (`/dev/zero`, `/dev/stdin`) could block or never end.
pub fn read_file(path: &Path, max: u64) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{}: not a regular file (a directory, device or pipe); point it at a file",
            path.display()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    read_all(file, &path.display().to_string(), max)
}

/// All of `reader` (named `name` in errors), at most `max` bytes of valid UTF-8.
pub fn read_all(reader: impl Read, name: &str, max: u64) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("{name}: cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{name}: larger than {}; is it the right file?", size(max)));
    }
    String::from_utf8(bytes).map_err(|e| format!("{name}: not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
}

/// All of `reader` as JSON lines: each at most `max_line` bytes and valid
/// UTF-8, or the error names the line.
pub fn read_lines(reader: impl Read, name: &str, max_line: u64) -> Result<String, String> {
    let mut reader = BufReader::new(reader);
    let mut text = String::new();
    for n in 1.. {
        let mut line = Vec::new();
        let read = (&mut reader)
            .take(max_line + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{name}:{n}: cannot read: {e}"))?;
        if read == 0 {
            break;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if body.len() as u64 > max_line {
            return Err(format!("{name}:{n}: the line is longer than {}; one JSON object per line", size(max_line)));
        }
        let line = String::from_utf8(line).map_err(|_| format!("{name}:{n}: not UTF-8 text"))?;
        text.push_str(&line);
    }
    Ok(text)
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 { format!("{} MiB", bytes >> 20) } else { format!("{} KiB", bytes >> 10) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_stop_reading_at_once_and_name_the_line() {
        let zeros = std::io::repeat(0).take(10 << 20);
        assert!(read_all(zeros, "/dev/zero", 1024).unwrap_err().contains("larger than 1 KiB"));
        let endless = std::io::repeat(b'x');
        assert_eq!(
            read_lines(endless, "h.jsonl", 1 << 20).unwrap_err(),
            "h.jsonl:1: the line is longer than 1 MiB; one JSON object per line"
        );
        let text = read_lines("{}\n{\"a\":1}\n".as_bytes(), "h", 16).unwrap();
        assert_eq!(text, "{}\n{\"a\":1}\n");
        assert!(read_lines("{}\n\u{7f}\n\u{80}".as_bytes(), "h", 16).is_ok());
        assert_eq!(read_lines(&b"ok\n\xff\xfe\n"[..], "h", 16).unwrap_err(), "h:2: not UTF-8 text");
        assert_eq!(read_lines(&b"0123456789abcdefX\n"[..], "h", 16).unwrap_err().split(':').nth(1), Some("1"));
    }
}
