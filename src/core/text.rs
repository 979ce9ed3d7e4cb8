//! Small text helpers shared by the core and the shell: hex digits, HTML
//! escaping and markdown table cells. Pure.

/// Equality that takes as long whatever the first difference (for secrets).
pub fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// `text` safe inside HTML element content and double-quoted attributes.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one markdown table cell: pipes and backslashes escaped, line
/// breaks folded to spaces, and HTML escaped so no markup passes through.
pub fn markdown_cell(text: &str) -> String {
    let folded: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = String::with_capacity(folded.len());
    for c in html_escape(&folded).chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }

    #[test]
    fn html_and_markdown_escaping_let_no_markup_or_table_breaks_through() {
        assert_eq!(html_escape("<b>\"Tom\" & 'Jerry'</b>"), "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;");
        assert_eq!(markdown_cell("sam|kim\n<script>x</script>"), "sam\\|kim &lt;script&gt;x&lt;/script&gt;");
        assert_eq!(markdown_cell("a_b*c"), "a\\_b\\*c");
    }
}
