//! The `[discord]` section: its keys, their validation (every problem by
//! key, with the fix) and the settings the channel runs with. The bot token
//! is not read here: [`DiscordSettings::token_source`] says where it is
//! (`token_env`, default `DISCORD_TOKEN`, or `token_file`).

use crate::config::{Env, Problem, Secret, SecretSource, Section};

/// The keys of `[discord]`.
pub const KEYS: &[&str] = &[
    "token_env",
    "token_file",
    "guild_id",
    "support_channels",
    "staff_channel",
    "agent_role",
    "manager_role",
    "survey_in",
    "api_base",
    "enabled",
];

/// Discord's own API, when `api_base` is not set.
pub const DISCORD_API: &str = "https://discord.com";

/// Where the survey goes after a resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyIn {
    /// In the conversation's thread (or DM).
    Thread,
    /// By direct message to the customer.
    Dm,
}

/// A role given by id or by its exact name (resolved when the guild is seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRef {
    Id(u64),
    Name(String),
}

impl RoleRef {
    fn parse(text: &str) -> RoleRef {
        match snowflake(text) {
            Some(id) => RoleRef::Id(id),
            None => RoleRef::Name(text.to_string()),
        }
    }
}

/// The validated `[discord]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordSettings {
    pub token_source: SecretSource,
    /// The token, once read by [`DiscordSettings::with_token`].
    pub token: Secret,
    pub guild_id: u64,
    /// Text or forum channels where customers ask for help.
    pub support_channels: Vec<u64>,
    /// Where nudges for unassigned conversations, escalations and detractor alerts go.
    pub staff_channel: u64,
    pub agent_role: RoleRef,
    pub manager_role: RoleRef,
    pub survey_in: SurveyIn,
    /// The REST base (a proxy, or a local fake in tests); `None`: Discord itself.
    pub api_base: Option<String>,
}

impl DiscordSettings {
    /// These settings with the token read from where it is kept.
    pub fn with_token(mut self, env: &dyn Env) -> Result<DiscordSettings, Problem> {
        self.token = self.token_source.read(env, "bot token from the Discord Developer Portal")?;
        Ok(self)
    }

    /// The REST base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        self.api_base.as_deref().unwrap_or(DISCORD_API).trim_end_matches('/')
    }
}

/// A Discord id: a positive 64-bit number written in decimal.
pub fn snowflake(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok().filter(|n| *n > 0)
}

/// Validates `[discord]`; `None` when it is disabled or has problems (all
/// reported in `s`).
pub fn parse(s: &mut Section) -> Option<DiscordSettings> {
    if s.flag("enabled") == Some(false) {
        return None;
    }
    let before = s.problem_count();
    let default = SecretSource::Env { key: s.key("token_env"), var: "DISCORD_TOKEN".into() };
    let token_source = s.secret_or("token", "bot token from the Discord Developer Portal", "DISCORD_TOKEN", default);
    let id = |s: &mut Section, key: &str, example: &str| -> u64 {
        let text = s.required(key, example);
        match snowflake(&text) {
            Some(id) => id,
            None if text.is_empty() => 0,
            None => {
                s.problem(
                    key,
                    format!("\"{text}\" is not a Discord id; turn on Developer Mode in Discord and use Copy ID"),
                );
                0
            }
        }
    };
    let guild_id = id(s, "guild_id", "800000000000000001");
    let listed = s.strings("support_channels");
    if listed.is_empty() {
        s.problem(
            "support_channels",
            "is empty; list the ids of the text or forum channels customers write in, e.g. [\"800000000000000201\"]",
        );
    }
    let mut support_channels = Vec::new();
    for c in &listed {
        match snowflake(c) {
            Some(id) => support_channels.push(id),
            None => s.problem(
                "support_channels",
                format!("\"{c}\" is not a Discord id; turn on Developer Mode in Discord and use Copy ID"),
            ),
        }
    }
    let staff_channel = id(s, "staff_channel", "800000000000000202");
    if support_channels.contains(&staff_channel) {
        s.problem("staff_channel", "is also a support channel; give the team a channel of its own");
    }
    let agent_role = RoleRef::parse(&s.required("agent_role", "Agents"));
    let manager_role = RoleRef::parse(&s.required("manager_role", "Managers"));
    let survey_in = match s.string("survey_in") {
        None | Some("thread") => SurveyIn::Thread,
        Some("dm") => SurveyIn::Dm,
        Some(other) => {
            s.problem("survey_in", format!("\"{other}\" is not a place for surveys; use \"thread\" or \"dm\""));
            SurveyIn::Thread
        }
    };
    let api_base = s.string("api_base").map(|b| b.trim().trim_end_matches('/').to_string());
    if let Some(b) = &api_base
        && !(b.starts_with("http://") || b.starts_with("https://"))
    {
        s.problem("api_base", format!("\"{b}\" is not an http(s) URL; e.g. \"http://127.0.0.1:8081\""));
    }
    if s.problem_count() > before {
        return None;
    }
    Some(DiscordSettings {
        token_source: token_source?,
        token: Secret::default(),
        guild_id,
        support_channels,
        staff_channel,
        agent_role,
        manager_role,
        survey_in,
        api_base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn snowflakes_are_positive_decimal_ids() {
        assert_eq!(snowflake("800000000000000201"), Some(800000000000000201));
        for bad in ["", "0", "12a", "-5", "123456789012345678901", "#general"] {
            assert_eq!(snowflake(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_issue_example_parses_and_the_token_is_read_only_when_asked() {
        let text = r#"
[discord]
token_env = "DISCORD_TOKEN"
guild_id = "800000000000000001"
support_channels = ["800000000000000201"]
staff_channel = "800000000000000202"
agent_role = "Agents"
manager_role = "800000000000000301"
survey_in = "dm"
api_base = "http://127.0.0.1:8081/"
"#;
        let c = Config::parse_with_env(text, "x", None, &std::collections::HashMap::new()).unwrap();
        let d = c.channels.discord.unwrap();
        assert_eq!((d.guild_id, d.staff_channel, d.survey_in), (800000000000000001, 800000000000000202, SurveyIn::Dm));
        assert_eq!(
            (d.agent_role.clone(), d.manager_role.clone()),
            (RoleRef::Name("Agents".into()), RoleRef::Id(800000000000000301))
        );
        assert_eq!(d.base(), "http://127.0.0.1:8081");
        let missing = d.clone().with_token(&std::collections::HashMap::new()).unwrap_err();
        assert_eq!(missing.key, "discord.token_env");
        let env: std::collections::HashMap<String, String> = [("DISCORD_TOKEN".to_string(), "t0k".to_string())].into();
        assert_eq!(d.with_token(&env).unwrap().token.0, "t0k");
    }

    #[test]
    fn every_problem_is_named_by_key() {
        let err = Config::parse(
            "[discord]\nguild_id = \"guild\"\nsupport_channels = []\nstaff_channel = \"12x\"\nsurvey_in = \"email\"\napi_base = \"discord.com\"\n",
            "x",
            None,
        )
        .unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "discord.guild_id",
                "discord.support_channels",
                "discord.staff_channel",
                "discord.agent_role",
                "discord.manager_role",
                "discord.survey_in",
                "discord.api_base"
            ],
            "{err}"
        );
    }
}
