//! The retry policies, in one place: exponential backoff spread by random
//! jitter, so retries after an outage do not all arrive together. Used for
//! outbox deliveries ([`delivery`]) and for a channel's reconnects
//! ([`reconnect`]), and for the database after a failed step.

use std::time::Duration;

/// `base` spread by up to ±`percent` percent.
pub fn jitter(base: Duration, percent: u32) -> Duration {
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let width = u64::from(percent.min(100)) * 20 + 1; // in tenths of a percent, both sides
    let spread = (u64::from(u16::from_le_bytes(r)) % width) as i64 - i64::from(percent.min(100)) * 10;
    let millis = base.as_millis() as i64 * (1000 + spread) / 1000;
    Duration::from_millis(millis.max(1) as u64)
}

/// After `attempts` failed deliveries: 5 s doubling up to one hour, ±20%.
pub fn delivery(attempts: i64) -> Duration {
    let base = (5_u64 << attempts.clamp(0, 10)).min(3600);
    jitter(Duration::from_secs(base), 20)
}

/// After `failures` failed connections: 2 s doubling up to one minute, at
/// least `floor` (itself at most a minute), ±25%, never under half a
/// second. A server back after an outage is seen within about a minute.
pub fn reconnect(failures: u32, floor: Duration) -> Duration {
    let base = Duration::from_secs((2u64 << failures.min(8)).min(60)).max(floor.min(Duration::from_secs(60)));
    jitter(base, 25).max(Duration::from_millis(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_backoff_grows_to_an_hour_with_a_spread_of_a_fifth() {
        for (attempts, base) in [(0, 5), (1, 10), (2, 20), (9, 2560), (50, 3600)] {
            for _ in 0..20 {
                let wait = delivery(attempts).as_millis() as u64;
                assert!(wait >= base * 800 && wait <= base * 1200, "{attempts}: {wait}");
            }
        }
    }

    #[test]
    fn reconnect_backoff_grows_to_a_minute_and_respects_its_floor() {
        for _ in 0..20 {
            let first = reconnect(1, Duration::ZERO).as_millis();
            assert!((3000..=5000).contains(&first), "{first}");
            assert!(reconnect(30, Duration::ZERO) <= Duration::from_secs(75));
            assert!(reconnect(30, Duration::ZERO) >= Duration::from_secs(45));
            assert!(reconnect(1, Duration::from_secs(60)) >= Duration::from_secs(45));
        }
    }
}
