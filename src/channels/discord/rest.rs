//! Discord's REST API for what concierge sends: messages (with an
//! idempotent `nonce`), threads, DMs, deletions and reading history. Built on
//! the same reqwest as serenity, because deliveries need what serenity's
//! client does not pass on: the `Retry-After` of a 429 and Discord's error
//! codes (50007: the user's DMs are closed; 50013: a missing permission).
//! Each error is typed for the dispatcher ([`RestError::delivery`]).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::channels::DeliveryError;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A REST error with what Discord said.
#[derive(Debug, Clone, PartialEq)]
pub enum RestError {
    /// 429: wait this long.
    RateLimited { after: Duration },
    /// Discord answered with an error status and (usually) a JSON code.
    Status { status: u16, code: i64, message: String },
    /// No answer (connection refused, timeout...).
    Network(String),
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::RateLimited { after } => write!(f, "rate limited by Discord for {after:?}"),
            RestError::Status { status, code, message } => {
                write!(f, "Discord answered {status} (code {code}): {message}")
            }
            RestError::Network(e) => write!(f, "cannot reach Discord's API: {e}"),
        }
    }
}

impl std::error::Error for RestError {}

impl RestError {
    /// The Discord JSON error code, when there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RestError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether Discord says the resource does not exist (404).
    pub fn not_found(&self) -> bool {
        matches!(self, RestError::Status { status: 404, .. })
    }

    /// As a delivery outcome: `doing` says what was being done (for the
    /// missing-permission line), e.g. "Send Messages in Threads in channel 42".
    pub fn delivery(self, doing: &str) -> DeliveryError {
        match self {
            RestError::RateLimited { after } => {
                DeliveryError::Later { after, reason: "rate limited by Discord".into() }
            }
            RestError::Status { status: 401, .. } => {
                DeliveryError::Transient("Discord refused the bot token (401): check discord.token_env".into())
            }
            // Retried: the message goes out once the permission is granted.
            RestError::Status { code: 50013, .. } => DeliveryError::Transient(format!(
                "the bot lacks a permission (403, code 50013): grant it {doing} (Server Settings → Roles, or the channel's permissions)"
            )),
            RestError::Status { status, code, message } if (400..500).contains(&status) => {
                DeliveryError::Permanent(format!("Discord refused it ({status}, code {code}): {message}"))
            }
            other => DeliveryError::Transient(other.to_string()),
        }
    }
}

/// Messages per history request (Discord's maximum).
pub const HISTORY_PAGE: usize = 100;

/// The REST client of one bot.
#[derive(Clone)]
pub struct Rest {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Rest> {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(Rest { client, base: format!("{}/api/v10", base.trim_end_matches('/')), token: token.to_string() })
    }

    /// One request; the JSON answer (`Null` for 204).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, RestError> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bot {}", self.token))
            .header("User-Agent", "DiscordBot (https://github.com/concierge, 0.1)");
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| RestError::Network(e.to_string()))?;
        let status = resp.status();
        let retry_header =
            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
        let bytes = resp.bytes().await.map_err(|e| RestError::Network(e.to_string()))?;
        let value: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(value);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let secs = retry_header.or_else(|| value["retry_after"].as_f64()).unwrap_or(1.0);
            return Err(RestError::RateLimited { after: Duration::from_secs_f64(secs.clamp(0.0, 3600.0)) });
        }
        Err(RestError::Status {
            status: status.as_u16(),
            code: value["code"].as_i64().unwrap_or(0),
            message: value["message"].as_str().unwrap_or("").to_string(),
        })
    }

    /// The bot's own user (checks the token).
    pub async fn me(&self) -> Result<Value, RestError> {
        self.call(Method::GET, "/users/@me", None).await
    }

    /// The guild's roles: (id, name).
    pub async fn roles(&self, guild: u64) -> Result<Vec<(u64, String)>, RestError> {
        let v = self.call(Method::GET, &format!("/guilds/{guild}/roles"), None).await?;
        let roles = v.as_array().cloned().unwrap_or_default();
        Ok(roles.iter().filter_map(|r| Some((id_of(r)?, r["name"].as_str()?.to_string()))).collect())
    }

    /// Posts a message; `nonce` makes a retry within minutes a no-op.
    pub async fn post(&self, channel: u64, mut message: Value, nonce: &str) -> Result<Value, RestError> {
        message["nonce"] = json!(nonce);
        message["enforce_nonce"] = json!(true);
        message["allowed_mentions"] = json!({"parse": ["users", "roles"]});
        self.call(Method::POST, &format!("/channels/{channel}/messages"), Some(&message)).await
    }

    /// Starts a public thread on `message`; its id is the message's.
    pub async fn start_thread(&self, channel: u64, message: u64, name: &str) -> Result<Value, RestError> {
        let body = json!({"name": name, "auto_archive_duration": 10080});
        self.call(Method::POST, &format!("/channels/{channel}/messages/{message}/threads"), Some(&body)).await
    }

    pub async fn delete_message(&self, channel: u64, message: u64) -> Result<(), RestError> {
        match self.call(Method::DELETE, &format!("/channels/{channel}/messages/{message}"), None).await {
            Ok(_) => Ok(()),
            Err(e) if e.not_found() => Ok(()), // already gone
            Err(e) => Err(e),
        }
    }

    /// The DM channel with a user.
    pub async fn dm_channel(&self, user: u64) -> Result<u64, RestError> {
        let v =
            self.call(Method::POST, "/users/@me/channels", Some(&json!({"recipient_id": user.to_string()}))).await?;
        id_of(&v).ok_or_else(|| RestError::Network("Discord's DM channel has no id".into()))
    }

    /// A channel (a thread's `parent_id`, its `type`).
    pub async fn channel(&self, id: u64) -> Result<Value, RestError> {
        self.call(Method::GET, &format!("/channels/{id}"), None).await
    }

    /// The guild's active threads: (thread id, parent id).
    pub async fn active_threads(&self, guild: u64) -> Result<Vec<(u64, u64)>, RestError> {
        let v = self.call(Method::GET, &format!("/guilds/{guild}/threads/active"), None).await?;
        let threads = v["threads"].as_array().cloned().unwrap_or_default();
        Ok(threads.iter().filter_map(|t| Some((id_of(t)?, t["parent_id"].as_str()?.parse().ok()?))).collect())
    }

    /// The [`HISTORY_PAGE`] messages next after `after`, oldest first: a
    /// full page means there may be more after its last.
    pub async fn messages_after(&self, channel: u64, after: u64) -> Result<Vec<Value>, RestError> {
        let path = format!("/channels/{channel}/messages?after={after}&limit={HISTORY_PAGE}");
        let v = self.call(Method::GET, &path, None).await?;
        let mut list = v.as_array().cloned().unwrap_or_default();
        list.sort_by_key(|m| id_of(m).unwrap_or(0));
        Ok(list)
    }

    /// The id of the newest message in `channel`, if it has any.
    pub async fn newest_message(&self, channel: u64) -> Result<Option<u64>, RestError> {
        let v = self.call(Method::GET, &format!("/channels/{channel}/messages?limit=1"), None).await?;
        Ok(v.as_array().and_then(|l| l.iter().filter_map(id_of).max()))
    }
}

impl Rest {
    /// Replaces the guild's slash commands with `commands`.
    pub async fn register_commands(&self, application: u64, guild: u64, commands: &Value) -> Result<(), RestError> {
        let path = format!("/applications/{application}/guilds/{guild}/commands");
        self.call(Method::PUT, &path, Some(commands)).await.map(|_| ())
    }

    /// Answers an interaction (within Discord's 3 seconds).
    pub async fn respond(&self, interaction: u64, token: &str, response: &Value) -> Result<(), RestError> {
        let path = format!("/interactions/{interaction}/{token}/callback");
        self.call(Method::POST, &path, Some(response)).await.map(|_| ())
    }

    /// A follow-up message to a deferred interaction, with one file attached.
    pub async fn follow_up_with_file(
        &self,
        application: u64,
        token: &str,
        message: &Value,
        file_name: &str,
        file: Vec<u8>,
    ) -> Result<(), RestError> {
        self.multipart(&format!("/webhooks/{application}/{token}"), message.clone(), file_name, file).await.map(|_| ())
    }

    /// Posts a message with one HTML file attached; `nonce` as for [`Rest::post`].
    pub async fn post_with_file(
        &self,
        channel: u64,
        mut message: Value,
        nonce: &str,
        file_name: &str,
        file: Vec<u8>,
    ) -> Result<Value, RestError> {
        message["nonce"] = json!(nonce);
        message["enforce_nonce"] = json!(true);
        message["allowed_mentions"] = json!({"parse": ["users", "roles"]});
        self.multipart(&format!("/channels/{channel}/messages"), message, file_name, file).await
    }

    async fn multipart(
        &self,
        path: &str,
        mut payload: Value,
        file_name: &str,
        file: Vec<u8>,
    ) -> Result<Value, RestError> {
        payload["attachments"] = json!([{"id": 0, "filename": file_name}]);
        let part = reqwest::multipart::Part::bytes(file)
            .file_name(file_name.to_string())
            .mime_str("text/html")
            .map_err(|e| RestError::Network(e.to_string()))?;
        let form = reqwest::multipart::Form::new().text("payload_json", payload.to_string()).part("files[0]", part);
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bot {}", self.token))
            .multipart(form)
            .send()
            .await
            .map_err(|e| RestError::Network(e.to_string()))?;
        let status = resp.status();
        let value: Value = resp.json_value().await;
        if status.is_success() {
            return Ok(value);
        }
        Err(RestError::Status {
            status: status.as_u16(),
            code: value["code"].as_i64().unwrap_or(0),
            message: value["message"].as_str().unwrap_or("").to_string(),
        })
    }
}

/// A response body as JSON (`Null` when it is not).
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let bytes = self.bytes().await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }
}

/// The `id` of a Discord object (a string snowflake).
pub fn id_of(v: &Value) -> Option<u64> {
    v["id"].as_str().and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: i64) -> RestError {
        RestError::Status { status, code, message: "nope".into() }
    }

    #[test]
    fn each_rest_error_is_typed_for_the_dispatcher_and_names_the_fix() {
        let later = RestError::RateLimited { after: Duration::from_millis(1500) }.delivery("x");
        assert!(matches!(later, DeliveryError::Later { after, .. } if after == Duration::from_millis(1500)));
        // A missing permission waits for it to be granted, and names it.
        let DeliveryError::Transient(line) = status(403, 50_013).delivery("Manage Messages in channel 42") else {
            panic!()
        };
        assert!(line.contains("Manage Messages in channel 42"), "{line}");
        let DeliveryError::Transient(line) = status(401, 0).delivery("x") else { panic!() };
        assert!(line.contains("discord.token_env"), "{line}");
        assert!(matches!(status(404, 10_003).delivery("x"), DeliveryError::Permanent(_)));
        assert!(matches!(status(502, 0).delivery("x"), DeliveryError::Transient(_)));
        assert!(matches!(RestError::Network("refused".into()).delivery("x"), DeliveryError::Transient(_)));
        assert!(status(404, 0).not_found() && status(403, 50_007).code() == Some(50_007));
    }
}
