//! What a survey link does, decided without I/O: the web page looks the
//! token up, then asks [`on_open`] or [`on_comment`] what to show and which
//! input (if any) to send to the driver.
//!
//! A token is the instant a survey was sent and the HMAC the router signed
//! for it ([`survey_token`]; tokens from before the instant was added are the
//! HMAC alone and still honoured); a link is honoured only when the stored
//! survey's token matches it (compared in constant time), the survey was
//! sent, and it has not expired. A first click records
//! the score; another click within [`SURVEY_CORRECTION_SECS`] changes it
//! (people misclick); later clicks record nothing new.

use jiff::Timestamp;

use super::router::{Channel, Input, SURVEY_CORRECTION_SECS, Survey, SurveyStatus, sign, survey_token};
use super::text::constant_eq;

/// What the survey page shows, and the input to apply first (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The question with its eleven buttons.
    Ask,
    /// Thanks for score N, with the comment form (and the buttons to change
    /// the score while that is still possible).
    Thanks { score: u8, can_change: bool, input: Option<Box<Input>> },
    /// The link is unknown or forged (404).
    NotFound,
    /// The survey is closed: expired, cancelled or never sent (410).
    Closed,
    /// Answered too long ago to change (409).
    AlreadyAnswered { score: u8 },
    /// The query is not a score from 0 to 10 (400).
    BadScore,
}

/// The survey a token names, if `found` (looked up by token) really is the
/// survey this secret signed it for.
pub fn verify<'a>(found: Option<&'a Survey>, token: &str, secret: &[u8]) -> Option<&'a Survey> {
    let survey = found?;
    let same_token = survey.token.as_deref().is_some_and(|t| constant_eq(t, token));
    let signed = sign(secret, &survey.id);
    let expected = match survey.sent_at {
        // A token from before tokens began with their instant: the HMAC alone.
        _ if token.len() == signed.len() => signed,
        Some(at) => survey_token(secret, &survey.id, at),
        None => return None,
    };
    (same_token && constant_eq(&expected, token)).then_some(survey)
}

/// Opening the link, with `?score=` as given (`None`: no score asked).
pub fn on_open(survey: Option<&Survey>, score: Option<&str>, now: Timestamp, expire: i64) -> Page {
    let Some(survey) = survey else { return Page::NotFound };
    let score = match score.map(parse_score) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return Page::BadScore,
    };
    let (channel, thread) = conversation_of(survey);
    match survey.status {
        SurveyStatus::Sent if survey.expired(now, expire) => Page::Closed,
        SurveyStatus::Sent => match score {
            None => Page::Ask,
            Some(score) => Page::Thanks {
                score,
                can_change: true,
                input: Some(Box::new(Input::SurveyAnswer { channel, thread, score, comment: None })),
            },
        },
        SurveyStatus::Answered => {
            let answered = survey.score.unwrap_or(0);
            let can_change = survey.correctable(now);
            match score {
                Some(n) if can_change && n != answered => Page::Thanks {
                    score: n,
                    can_change,
                    input: Some(Box::new(Input::SurveyCorrection { channel, thread, score: n })),
                },
                Some(n) if n != answered => Page::AlreadyAnswered { score: answered },
                _ => Page::Thanks { score: answered, can_change, input: None },
            }
        }
        _ => Page::Closed,
    }
}

/// What a comment posted on the thank-you page does: the input to apply, or
/// the page to show instead.
pub fn on_comment(survey: Option<&Survey>, comment: &str, now: Timestamp, expire: i64) -> Result<Input, Page> {
    let Some(survey) = survey else { return Err(Page::NotFound) };
    if survey.status != SurveyStatus::Answered {
        return Err(Page::Closed);
    }
    // A comment may follow the answer for as long as the survey was open.
    let deadline = survey.answered_at.map_or(0, |a| a.as_second()) + expire.max(SURVEY_CORRECTION_SECS);
    if now.as_second() > deadline {
        return Err(Page::AlreadyAnswered { score: survey.score.unwrap_or(0) });
    }
    let (channel, thread) = conversation_of(survey);
    Ok(Input::SurveyComment { channel, thread, comment: comment.trim().to_string() })
}

/// The anti-forgery value of a survey's comment form: only a page served
/// for that survey carries it.
pub fn form_key(secret: &[u8], survey: &Survey) -> String {
    sign(secret, &format!("comment-form:{}", survey.id))
}

/// Whether `given` is the form key of `survey`.
pub fn form_key_ok(secret: &[u8], survey: &Survey, given: &str) -> bool {
    constant_eq(&form_key(secret, survey), given)
}

fn parse_score(s: &str) -> Option<u8> {
    match s.trim().parse::<u8>() {
        Ok(n) if n <= 10 => Some(n),
        _ => None,
    }
}

fn conversation_of(survey: &Survey) -> (Option<Channel>, String) {
    match survey.conversation.split_once(':') {
        Some((channel, thread)) => (Channel::parse(channel), thread.to_string()),
        None => (None, survey.conversation.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a secret of sixteen bytes or more";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sent() -> Survey {
        Survey {
            id: "email:T1#1".into(),
            conversation: "email:T1".into(),
            customer_id: "ana@example.test".into(),
            status: SurveyStatus::Sent,
            due_at: ts("2026-11-02T10:00:00Z"),
            sent_at: Some(ts("2026-11-02T10:00:00Z")),
            token: Some(survey_token(SECRET, "email:T1#1", ts("2026-11-02T10:00:00Z"))),
            score: None,
            comment: None,
            answered_at: None,
        }
    }

    fn answered(at: &str, score: u8) -> Survey {
        Survey { status: SurveyStatus::Answered, score: Some(score), answered_at: Some(ts(at)), ..sent() }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn only_the_token_signed_for_the_stored_survey_is_honoured() {
        let s = sent();
        let token = s.token.clone().unwrap();
        assert!(verify(Some(&s), &token, SECRET).is_some());
        assert!(verify(Some(&s), &token, b"another secret entirely!").is_none());
        let mut forged = token.clone();
        forged.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
        assert!(verify(Some(&s), &forged, SECRET).is_none());
        assert!(verify(None, &token, SECRET).is_none());
        // A row whose token was altered (its instant or its signature) is
        // not honoured either: both halves are checked against the secret.
        for at in [0, 20] {
            let mut altered = token.clone();
            let was = altered.remove(at);
            altered.insert(at, if was == '0' { '1' } else { '0' });
            let tampered = Survey { token: Some(altered.clone()), ..sent() };
            assert!(verify(Some(&tampered), &altered, SECRET).is_none(), "{altered}");
        }
    }

    #[test]
    fn a_token_from_before_tokens_carried_their_instant_is_still_honoured() {
        let legacy = sign(SECRET, "email:T1#1");
        let s = Survey { token: Some(legacy.clone()), ..sent() };
        assert!(verify(Some(&s), &legacy, SECRET).is_some());
        assert!(verify(Some(&s), &legacy, b"another secret entirely!").is_none());
    }

    #[test]
    fn tokens_have_one_length_and_sort_by_the_instant_they_were_sent() {
        let instants = [Timestamp::MIN, ts("1969-12-31T23:59:59Z"), ts("2026-11-02T10:00:00Z"), Timestamp::MAX];
        // Signed for different surveys: the order is the instants' alone.
        let tokens: Vec<String> =
            instants.iter().enumerate().map(|(n, at)| survey_token(SECRET, &format!("email:T{n}#1"), *at)).collect();
        assert!(tokens.iter().all(|t| t.len() == 58 && t.bytes().all(|b| b.is_ascii_hexdigit())), "{tokens:?}");
        assert!(tokens.is_sorted(), "{tokens:?}");
    }

    #[test]
    fn a_click_records_the_score_and_a_second_click_soon_after_changes_it() {
        let now = ts("2026-11-03T10:00:00Z");
        let page = on_open(Some(&sent()), Some("9"), now, 30 * DAY);
        let Page::Thanks { score: 9, can_change: true, input: Some(input) } = page else { panic!("{page:?}") };
        let Input::SurveyAnswer { score: 9, thread, .. } = *input else { panic!("{input:?}") };
        assert_eq!(thread, "T1");
        let s = answered("2026-11-03T10:00:00Z", 9);
        // The same score again (a double click) records nothing new.
        assert_eq!(
            on_open(Some(&s), Some("9"), ts("2026-11-03T10:00:01Z"), 30 * DAY),
            Page::Thanks { score: 9, can_change: true, input: None }
        );
        let Page::Thanks { input: Some(input), .. } =
            on_open(Some(&s), Some("6"), ts("2026-11-03T10:09:59Z"), 30 * DAY)
        else {
            panic!()
        };
        assert!(matches!(*input, Input::SurveyCorrection { score: 6, .. }), "{input:?}");
        assert_eq!(
            on_open(Some(&s), Some("6"), ts("2026-11-03T10:10:01Z"), 30 * DAY),
            Page::AlreadyAnswered { score: 9 }
        );
    }

    #[test]
    fn expired_unsent_unknown_and_malformed_links_record_nothing() {
        let now = ts("2026-12-03T10:00:01Z");
        assert_eq!(on_open(Some(&sent()), Some("9"), now, 30 * DAY), Page::Closed);
        assert_eq!(on_open(Some(&sent()), None, ts("2026-11-03T10:00:00Z"), 30 * DAY), Page::Ask);
        let cancelled = Survey { status: SurveyStatus::Cancelled, ..sent() };
        assert_eq!(on_open(Some(&cancelled), Some("9"), now, 30 * DAY), Page::Closed);
        assert_eq!(on_open(None, Some("9"), now, 30 * DAY), Page::NotFound);
        for bad in ["11", "-1", "nine", "", "9.5", "999999999999"] {
            assert_eq!(on_open(Some(&sent()), Some(bad), now, 30 * DAY), Page::BadScore, "{bad}");
        }
    }

    #[test]
    fn comments_need_an_answer_and_a_form_served_for_that_survey() {
        let s = answered("2026-11-03T10:00:00Z", 4);
        let input = on_comment(Some(&s), "  slow  ", ts("2026-11-03T10:05:00Z"), 30 * DAY).unwrap();
        assert_eq!(
            input,
            Input::SurveyComment { channel: Some(Channel::Email), thread: "T1".into(), comment: "slow".into() }
        );
        assert_eq!(on_comment(Some(&sent()), "x", ts("2026-11-03T10:05:00Z"), 30 * DAY), Err(Page::Closed));
        let key = form_key(SECRET, &s);
        assert!(form_key_ok(SECRET, &s, &key));
        let other = Survey { id: "email:T2#1".into(), ..s.clone() };
        assert!(!form_key_ok(SECRET, &other, &key) && !form_key_ok(SECRET, &s, ""));
    }
}
