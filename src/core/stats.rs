//! Report maths: nearest-rank percentiles and the Net Promoter Score.
//!
//! Pure functions over plain numbers; the report module feeds them.

use serde::Serialize;

/// The value at rank ⌈p/100 × n⌉ of the sorted values (nearest-rank); `None`
/// for no values. `sorted` must be ascending.
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p.min(100)) * n).div_ceil(100).max(1);
    Some(sorted[(rank - 1) as usize])
}

/// Where an NPS answer falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NpsClass {
    Promoter,
    Passive,
    Detractor,
}

/// Promoters 9-10, passives 7-8, detractors 0-6.
pub fn classify(score: u8) -> NpsClass {
    match score {
        9.. => NpsClass::Promoter,
        7..=8 => NpsClass::Passive,
        _ => NpsClass::Detractor,
    }
}

/// Counts of NPS answers and the score they give.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Nps {
    pub responses: u32,
    pub promoters: u32,
    pub passives: u32,
    pub detractors: u32,
}

impl Nps {
    pub fn from_scores(scores: impl IntoIterator<Item = u8>) -> Nps {
        let mut nps = Nps::default();
        for s in scores {
            nps.responses += 1;
            match classify(s) {
                NpsClass::Promoter => nps.promoters += 1,
                NpsClass::Passive => nps.passives += 1,
                NpsClass::Detractor => nps.detractors += 1,
            }
        }
        nps
    }

    /// %promoters − %detractors, rounded to the nearest whole number, from
    /// −100 to 100; `None` with no answers.
    pub fn score(&self) -> Option<i32> {
        if self.responses == 0 {
            return None;
        }
        let diff = i64::from(self.promoters) - i64::from(self.detractors);
        Some(round_half_away(diff * 100, i64::from(self.responses)) as i32)
    }
}

/// `num / den` rounded to the nearest integer, halves away from zero
/// (`den > 0`), in integers so that no halfway case depends on floating
/// point.
pub fn round_half_away(num: i64, den: i64) -> i64 {
    let (q, r) = (num / den, num % den);
    if 2 * r.abs() >= den { q + num.signum() } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nearest_rank_follows_the_definition() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(nearest_rank(&v, 50), Some(50));
        assert_eq!(nearest_rank(&v, 90), Some(90));
        assert_eq!(nearest_rank(&v, 91), Some(100));
        assert_eq!(nearest_rank(&v, 0), Some(10));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn answers_are_classified_at_the_documented_boundaries() {
        let classes: Vec<_> = (0..=10).map(classify).collect();
        assert_eq!(classes[..7], [NpsClass::Detractor; 7]);
        assert_eq!(classes[7..9], [NpsClass::Passive; 2]);
        assert_eq!(classes[9..], [NpsClass::Promoter; 2]);
    }

    #[test]
    fn nps_is_promoters_minus_detractors_in_percent() {
        let nps = Nps::from_scores([10, 9, 9, 8, 7, 6, 0, 10]);
        assert_eq!((nps.responses, nps.promoters, nps.passives, nps.detractors), (8, 4, 2, 2));
        assert_eq!(nps.score(), Some(25));
        assert_eq!(Nps::from_scores([10, 10]).score(), Some(100));
        assert_eq!(Nps::from_scores([0, 3]).score(), Some(-100));
        assert_eq!(Nps::from_scores([]).score(), None);
        // 1 promoter, 2 detractors of 3: -33.3 rounds to -33.
        assert_eq!(Nps::from_scores([9, 1, 2]).score(), Some(-33));
    }

    #[test]
    fn halves_round_away_from_zero_in_integers() {
        // (num, den, rounded)
        for (num, den, rounded) in [
            (125, 10, 13),
            (-125, 10, -13),
            (124, 10, 12),
            (-124, 10, -12),
            (126, 10, 13),
            (-126, 10, -13),
            (0, 7, 0),
            (1, 2, 1),
            (-1, 2, -1),
            (1, 3, 0),
            (2, 3, 1),
            (-2, 3, -1),
            (1000, 1, 1000),
        ] {
            assert_eq!(round_half_away(num, den), rounded, "{num}/{den}");
        }
        // NPS halves: 1 promoter, 2 detractors, 5 passives of 8 is -12.5.
        assert_eq!(Nps::from_scores([9, 0, 1, 7, 7, 7, 8, 8]).score(), Some(-13));
        assert_eq!(Nps::from_scores([9, 9, 0, 7, 7, 7, 8, 8]).score(), Some(13));
    }

    proptest! {
        #[test]
        fn rounding_is_within_a_half_and_symmetric(num in -1_000_000i64..1_000_000, den in 1i64..10_000) {
            let r = round_half_away(num, den);
            // |num/den - r| <= 1/2, in integers.
            prop_assert!((num - r * den).abs() * 2 <= den);
            prop_assert_eq!(round_half_away(-num, den), -r);
        }

        #[test]
        fn nps_stays_in_range(scores in proptest::collection::vec(0u8..=10, 1..200)) {
            let nps = Nps::from_scores(scores.iter().copied());
            let s = nps.score().unwrap();
            prop_assert!((-100..=100).contains(&s));
            prop_assert_eq!(nps.promoters + nps.passives + nps.detractors, nps.responses);
        }

        #[test]
        fn nearest_rank_is_an_element_with_enough_values_below(mut v in proptest::collection::vec(-1000i64..1000, 1..100), p in 1u32..=100) {
            v.sort_unstable();
            let x = nearest_rank(&v, p).unwrap();
            // In integers: at least p% of the values are at or below it.
            let at_or_below = v.iter().filter(|&&y| y <= x).count();
            prop_assert!(at_or_below * 100 >= p as usize * v.len());
        }
    }
}
