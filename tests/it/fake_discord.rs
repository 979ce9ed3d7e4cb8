//! A fake Discord on 127.0.0.1 for the Discord tests (test support, not
//! product). It speaks the real protocol that serenity 0.12 and concierge's
//! REST client use: REST under `/api/v10` (gateway URL, the bot user, guild
//! roles, channels, messages with `nonce`/`enforce_nonce`, threads on a
//! message, DMs, deletes, history) and the gateway WebSocket (HELLO,
//! IDENTIFY → READY, heartbeat ACKs, RESUME → RESUMED with the missed
//! events replayed, dispatches, close codes). Every REST call is recorded so
//! tests assert on what concierge really sent; failures (429 with
//! Retry-After, 500) can be injected; the gateway can be dropped.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const TOKEN: &str = "fake-bot-token";
pub const GUILD: u64 = 800_000_000_000_000_001;
pub const SUPPORT: u64 = 800_000_000_000_000_201;
pub const STAFF: u64 = 800_000_000_000_000_202;
pub const FORUM: u64 = 800_000_000_000_000_203;
pub const AGENT_ROLE: u64 = 800_000_000_000_000_900;
pub const MANAGER_ROLE: u64 = 800_000_000_000_000_901;
pub const BOT: u64 = 800_000_000_000_001_000;
pub const ANA: u64 = 800_000_000_000_002_001;
pub const SAM: u64 = 800_000_000_000_002_002;
pub const LEE: u64 = 800_000_000_000_002_003;

/// One REST call concierge made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// The body as text (a multipart upload is not JSON).
    pub raw: String,
}

/// A failure to answer the next matching calls with.
struct Failure {
    method: Method,
    path_ends: String,
    status: u16,
    retry_after: Option<f64>,
    times: u32,
}

enum WsCmd {
    Send(String),
    Drop,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    counter: u64,
    history: HashMap<u64, Vec<Value>>,
    parents: HashMap<u64, u64>,
    threads_started: HashSet<u64>,
    nonces: HashMap<(u64, String), Value>,
    failures: Vec<Failure>,
    closed_dms: HashSet<u64>,
    gateway: Option<mpsc::UnboundedSender<WsCmd>>,
    seq: u64,
    events: Vec<(u64, String)>,
    close_on_identify: Option<u16>,
    identifies: u32,
    resumes: u32,
    sessions: u32,
}

impl State {
    /// A snowflake for now: time in its high bits, so ids grow with time.
    fn snowflake(&mut self) -> u64 {
        self.counter += 1;
        let ms = jiff::Timestamp::now().as_millisecond() as u64 - 1_420_070_400_000;
        (ms << 22) + (self.counter & 0x3f_ffff)
    }

    fn dispatch(&mut self, t: &str, d: Value) {
        self.seq += 1;
        let text = json!({"op": 0, "s": self.seq, "t": t, "d": d}).to_string();
        self.events.push((self.seq, text.clone()));
        if let Some(g) = &self.gateway {
            let _ = g.send(WsCmd::Send(text));
        }
    }
}

pub struct FakeDiscord {
    pub rest_port: u16,
    state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

fn listener() -> std::net::TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

impl FakeDiscord {
    pub fn start() -> FakeDiscord {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (rest, ws) = (listener(), listener());
        let (rest_port, ws_port) = (rest.local_addr().unwrap().port(), ws.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        rt.spawn(async move {
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                    let st = st.clone();
                    async move { rest_call(&st, method, uri, headers, body, ws_port) }
                },
            );
            let listener = tokio::net::TcpListener::from_std(rest).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        let st = state.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(ws).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(gateway_connection(st.clone(), stream, ws_port));
            }
        });
        FakeDiscord { rest_port, state, _rt: rt }
    }

    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// A guild message by `author` (with `roles`) in `channel`, dispatched
    /// to the bot when `live`, always kept in the channel's history.
    fn write(
        &self,
        channel: u64,
        guild: Option<u64>,
        author: (u64, &str),
        roles: &[u64],
        text: &str,
        live: bool,
    ) -> u64 {
        self.with(|s| {
            let id = s.snowflake();
            let mut m = message_json(id, channel, json!({"id": author.0.to_string(), "username": author.1, "global_name": author.1}), text);
            if let Some(g) = guild {
                m["guild_id"] = json!(g.to_string());
                m["member"] = json!({"roles": roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(), "joined_at": "2024-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "nick": null});
            }
            s.history.entry(channel).or_default().push(m.clone());
            if live {
                s.dispatch("MESSAGE_CREATE", m);
            }
            id
        })
    }

    /// A customer (no role) writes in `channel` of the guild.
    pub fn customer_writes(&self, channel: u64, customer: (u64, &str), text: &str) -> u64 {
        self.write(channel, Some(GUILD), customer, &[], text, true)
    }

    /// A member with `roles` writes in `channel` of the guild.
    pub fn member_writes(&self, channel: u64, member: (u64, &str), roles: &[u64], text: &str) -> u64 {
        self.write(channel, Some(GUILD), member, roles, text, true)
    }

    /// A customer writes while concierge is not connected: history only.
    pub fn customer_writes_unseen(&self, channel: u64, customer: (u64, &str), text: &str) -> u64 {
        self.write(channel, Some(GUILD), customer, &[], text, false)
    }

    /// A new forum post while concierge is not connected: history only.
    pub fn forum_post_unseen(&self, forum: u64, customer: (u64, &str), text: &str) -> u64 {
        let thread = self.with(|s| s.snowflake());
        self.with(|s| s.parents.insert(thread, forum));
        self.write(thread, Some(GUILD), customer, &[], text, false);
        thread
    }

    /// A direct message to the bot; returns the DM channel's id.
    pub fn dm_from(&self, user: (u64, &str), text: &str) -> u64 {
        let channel = dm_channel_of(user.0);
        self.write(channel, None, user, &[], text, true);
        channel
    }

    /// A new post in a forum channel: a thread whose first message has its id.
    pub fn forum_post(&self, forum: u64, customer: (u64, &str), text: &str) -> u64 {
        let thread = self.with(|s| s.snowflake());
        self.with(|s| s.parents.insert(thread, forum));
        self.write(thread, Some(GUILD), customer, &[], text, true);
        thread
    }

    /// A member runs a slash command in `channel`; returns the interaction id.
    pub fn slash(&self, member: (u64, &str), roles: &[u64], channel: u64, name: &str, options: Value) -> u64 {
        let data = json!({"id": "900000000000000001", "name": name, "type": 1, "options": options, "guild_id": GUILD.to_string()});
        self.interact(2, member, roles, channel, data, None)
    }

    /// Someone clicks the button `custom_id` under the bot's message `message` in `channel`.
    pub fn click(&self, user: (u64, &str), roles: &[u64], channel: u64, message: u64, custom_id: &str) -> u64 {
        let m = self.with(|s| {
            s.history.values().flatten().find(|m| m["id"].as_str() == Some(message.to_string().as_str())).cloned()
        });
        let m = m.unwrap_or_else(|| panic!("no message {message}"));
        self.interact(3, user, roles, channel, json!({"custom_id": custom_id, "component_type": 2}), Some(m))
    }

    /// Someone submits the form `custom_id` with one text field.
    pub fn submit_form(&self, user: (u64, &str), channel: u64, custom_id: &str, field: &str, value: &str) -> u64 {
        let data = json!({"custom_id": custom_id, "components": [{"type": 1, "components": [
            {"type": 4, "custom_id": field, "value": value}
        ]}]});
        self.interact(5, user, &[], channel, data, None)
    }

    fn interact(
        &self,
        kind: u8,
        user: (u64, &str),
        roles: &[u64],
        channel: u64,
        data: Value,
        message: Option<Value>,
    ) -> u64 {
        self.with(|s| {
            let id = s.snowflake();
            let who = json!({"id": user.0.to_string(), "username": user.1, "discriminator": "0", "global_name": user.1, "avatar": null});
            let dm = channel == dm_channel_of(user.0);
            let mut i = json!({
                "id": id.to_string(), "application_id": BOT.to_string(), "type": kind, "data": data,
                "channel_id": channel.to_string(), "token": format!("token-{id}"), "version": 1,
                "app_permissions": "0", "locale": "en-US", "entitlements": [], "attachment_size_limit": 8_388_608
            });
            if dm {
                i["user"] = who;
            } else {
                i["guild_id"] = json!(GUILD.to_string());
                i["guild_locale"] = json!("en-US");
                i["member"] = json!({
                    "user": who, "roles": roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(), "nick": null,
                    "avatar": null, "joined_at": "2024-01-01T00:00:00.000000+00:00", "premium_since": null,
                    "deaf": false, "mute": false, "flags": 0, "pending": false, "permissions": "0",
                    "communication_disabled_until": null
                });
            }
            if let Some(m) = message {
                i["message"] = m;
            }
            s.dispatch("INTERACTION_CREATE", i);
            id
        })
    }

    /// The bot's answer to an interaction (its callback body), if any yet.
    pub fn answer_to(&self, interaction: u64) -> Option<Value> {
        let suffix = format!("/interactions/{interaction}/token-{interaction}/callback");
        self.calls().into_iter().find(|c| c.path.ends_with(&suffix)).map(|c| c.body)
    }

    /// The follow-ups sent for an interaction (the multipart bodies, as text).
    pub fn follow_ups(&self, interaction: u64) -> Vec<String> {
        let suffix = format!("/token-{interaction}");
        self.calls()
            .into_iter()
            .filter(|c| c.path.contains("/webhooks/") && c.path.ends_with(&suffix))
            .map(|c| c.raw)
            .collect()
    }

    /// A gateway event of any type (unknown ones included).
    pub fn dispatch_raw(&self, t: &str, d: Value) {
        self.with(|s| s.dispatch(t, d));
    }

    /// A raw text frame on the gateway (garbage included).
    pub fn send_raw_frame(&self, text: &str) {
        self.with(|s| {
            if let Some(g) = &s.gateway {
                let _ = g.send(WsCmd::Send(text.to_string()));
            }
        });
    }

    /// Drops the gateway connection without a close frame.
    pub fn drop_gateway(&self) {
        self.with(|s| {
            if let Some(g) = s.gateway.take() {
                let _ = g.send(WsCmd::Drop);
            }
        });
    }

    /// Answers the next IDENTIFY with this close code (4004, 4014).
    pub fn close_on_identify(&self, code: u16) {
        self.with(|s| s.close_on_identify = Some(code));
    }

    /// Answers the next `times` calls matching `method` and `path_ends` with `status`.
    pub fn fail(&self, method: &str, path_ends: &str, status: u16, retry_after: Option<f64>, times: u32) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        self.with(|s| s.failures.push(Failure { method, path_ends: path_ends.into(), status, retry_after, times }));
    }

    /// `user` does not accept DMs from the bot (403, code 50007).
    pub fn close_dms(&self, user: u64) {
        self.with(|s| s.closed_dms.insert(user));
    }

    /// The `[discord]` section of a `concierge` configuration for this fake
    /// (the token from `CONCIERGE_TEST_DISCORD_TOKEN`).
    pub fn concierge_section(&self) -> String {
        format!(
            r#"[discord]
token_env = "CONCIERGE_TEST_DISCORD_TOKEN"
guild_id = "{GUILD}"
support_channels = ["{SUPPORT}", "{FORUM}"]
staff_channel = "{STAFF}"
agent_role = "Agents"
manager_role = "Managers"
api_base = "{}"
"#,
            self.api_base()
        )
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    /// Messages the bot posted in `channel` (successful POSTs), oldest first.
    pub fn posted_in(&self, channel: u64) -> Vec<Value> {
        self.with(|s| {
            s.history
                .get(&channel)
                .map(|h| {
                    h.iter().filter(|m| m["author"]["id"].as_str() == Some(BOT.to_string().as_str())).cloned().collect()
                })
                .unwrap_or_default()
        })
    }

    pub fn identifies(&self) -> u32 {
        self.with(|s| s.identifies)
    }

    pub fn resumes(&self) -> u32 {
        self.with(|s| s.resumes)
    }

    /// Waits (up to 30 s) until `ready` holds of the fake's calls.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&FakeDiscord) -> bool) {
        let until = Instant::now() + Duration::from_secs(30);
        while !ready(self) {
            assert!(Instant::now() < until, "timed out waiting for {what}; calls: {:#?}", self.calls());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The DM channel the fake gives a user.
pub fn dm_channel_of(user: u64) -> u64 {
    user + 7
}

fn message_json(id: u64, channel: u64, author: Value, content: &str) -> Value {
    let at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
    json!({
        "id": id.to_string(), "channel_id": channel.to_string(), "author": author, "content": content,
        "timestamp": at, "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0
    })
}

/// The `payload_json` part of a multipart body.
fn payload_json(raw: &str) -> Option<Value> {
    let at = raw.find("name=\"payload_json\"")?;
    let rest = &raw[at..];
    let start = rest.find("\r\n\r\n")? + 4;
    let end = rest[start..].find("\r\n--")? + start;
    serde_json::from_str(&rest[start..end]).ok()
}

fn error(status: u16, code: i64, message: &str) -> (StatusCode, HeaderMap, axum::Json<Value>) {
    (StatusCode::from_u16(status).unwrap(), HeaderMap::new(), axum::Json(json!({"code": code, "message": message})))
}

fn rest_call(
    state: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
    ws_port: u16,
) -> (StatusCode, HeaderMap, axum::Json<Value>) {
    let mut s = state.lock().unwrap();
    let path = uri.path().to_string();
    let raw = String::from_utf8_lossy(&body).to_string();
    // A multipart upload carries its JSON in the `payload_json` part.
    let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| payload_json(&raw).unwrap_or(Value::Null));
    s.calls.push(Call { method: method.to_string(), path: uri.to_string(), body: body.clone(), raw });
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bot {TOKEN}")) {
        return error(401, 0, "401: Unauthorized");
    }
    if let Some(f) = s.failures.iter_mut().find(|f| f.method == method && path.ends_with(&f.path_ends) && f.times > 0) {
        f.times -= 1;
        let mut h = HeaderMap::new();
        if let Some(after) = f.retry_after {
            h.insert("retry-after", after.to_string().parse().unwrap());
            let body = json!({"message": "You are being rate limited.", "retry_after": after, "global": false});
            return (StatusCode::from_u16(f.status).unwrap(), h, axum::Json(body));
        }
        return (
            StatusCode::from_u16(f.status).unwrap(),
            h,
            axum::Json(json!({"message": "Internal Server Error", "code": 0})),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let ok = |v: Value| (StatusCode::OK, HeaderMap::new(), axum::Json(v));
    let num = |t: &str| t.parse::<u64>().unwrap_or(0);
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["gateway"]) => ok(json!({"url": format!("ws://127.0.0.1:{ws_port}")})),
        ("GET", ["users", "@me"]) => ok(
            json!({"id": BOT.to_string(), "username": "concierge", "discriminator": "0", "global_name": null, "avatar": null, "bot": true}),
        ),
        ("GET", ["guilds", _, "roles"]) => ok(json!([
            {"id": GUILD.to_string(), "name": "@everyone"},
            {"id": AGENT_ROLE.to_string(), "name": "Agents"},
            {"id": MANAGER_ROLE.to_string(), "name": "Managers"}
        ])),
        ("GET", ["guilds", _, "threads", "active"]) => {
            let threads: Vec<Value> = s
                .parents
                .iter()
                .map(|(t, p)| json!({"id": t.to_string(), "type": 11, "parent_id": p.to_string(), "guild_id": GUILD.to_string()}))
                .collect();
            ok(json!({"threads": threads, "members": []}))
        }
        ("GET", ["channels", id]) => {
            let id = num(id);
            match s.parents.get(&id) {
                Some(parent) => ok(
                    json!({"id": id.to_string(), "type": 11, "parent_id": parent.to_string(), "guild_id": GUILD.to_string()}),
                ),
                None => ok(json!({"id": id.to_string(), "type": 0, "guild_id": GUILD.to_string()})),
            }
        }
        ("GET", ["channels", id, "messages"]) => {
            let param = |name: &str| {
                let prefix = format!("{name}=");
                uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(prefix.as_str())).map(num))
            };
            let limit = param("limit").map_or(50, |l| l.clamp(1, 100)) as usize;
            let history = s.history.get(&num(id)).cloned().unwrap_or_default();
            let mut list: Vec<Value> = match param("after") {
                // The `limit` messages next after `after`...
                Some(after) => {
                    history.into_iter().filter(|m| num(m["id"].as_str().unwrap_or("0")) > after).take(limit).collect()
                }
                // ...or the newest `limit`.
                None => history.into_iter().rev().take(limit).rev().collect(),
            };
            list.reverse(); // Discord gives the newest first
            ok(Value::Array(list))
        }
        ("POST", ["channels", id, "messages"]) => {
            let channel = num(id);
            if s.closed_dms.iter().any(|u| dm_channel_of(*u) == channel) {
                return error(403, 50007, "Cannot send messages to this user");
            }
            let nonce = body["nonce"].as_str().unwrap_or("").to_string();
            if body["enforce_nonce"] == true
                && let Some(existing) = s.nonces.get(&(channel, nonce.clone()))
            {
                return ok(existing.clone());
            }
            let id = s.snowflake();
            let mut m = message_json(
                id,
                channel,
                json!({"id": BOT.to_string(), "username": "concierge", "bot": true}),
                body["content"].as_str().unwrap_or(""),
            );
            m["components"] = body["components"].clone();
            s.nonces.insert((channel, nonce), m.clone());
            s.history.entry(channel).or_default().push(m.clone());
            s.dispatch("MESSAGE_CREATE", m.clone());
            ok(m)
        }
        ("POST", ["channels", channel, "messages", message, "threads"]) => {
            let (channel, message) = (num(channel), num(message));
            if !s.threads_started.insert(message) {
                return error(400, 160_004, "A thread has already been created for this message");
            }
            s.parents.insert(message, channel);
            ok(
                json!({"id": message.to_string(), "type": 11, "parent_id": channel.to_string(), "guild_id": GUILD.to_string(), "name": body["name"]}),
            )
        }
        ("DELETE", ["channels", channel, "messages", message]) => {
            let (channel, message) = (num(channel), num(message));
            if let Some(h) = s.history.get_mut(&channel) {
                h.retain(|m| m["id"].as_str() != Some(message.to_string().as_str()));
            }
            (StatusCode::NO_CONTENT, HeaderMap::new(), axum::Json(Value::Null))
        }
        ("PUT", ["applications", _, "guilds", _, "commands"]) => ok(body),
        ("POST", ["interactions", _, _, "callback"]) => {
            (StatusCode::NO_CONTENT, HeaderMap::new(), axum::Json(Value::Null))
        }
        ("POST", ["webhooks", _, _]) => {
            let id = s.snowflake();
            ok(message_json(id, 0, json!({"id": BOT.to_string(), "username": "concierge", "bot": true}), ""))
        }
        ("POST", ["users", "@me", "channels"]) => {
            let user = num(body["recipient_id"].as_str().unwrap_or("0"));
            ok(
                json!({"id": dm_channel_of(user).to_string(), "type": 1, "recipients": [{"id": user.to_string(), "username": "user"}]}),
            )
        }
        _ => error(404, 0, "404: Not Found"),
    }
}

async fn gateway_connection(state: Arc<Mutex<State>>, stream: tokio::net::TcpStream, ws_port: u16) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut sink, mut frames) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<WsCmd>();
    if sink.send(Ws::Text(json!({"op": 10, "d": {"heartbeat_interval": 41250}}).to_string())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = frames.next() => {
                let Some(Ok(Ws::Text(text))) = frame else { return };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                let mut replies = Vec::new();
                let mut close = None;
                {
                    let mut s = state.lock().unwrap();
                    match v["op"].as_u64() {
                        Some(1) => replies.push(json!({"op": 11}).to_string()),
                        Some(2) => {
                            s.identifies += 1;
                            if let Some(code) = s.close_on_identify.take() {
                                close = Some(code);
                            } else {
                            s.sessions += 1;
                            s.seq += 1;
                            let ready = json!({"op": 0, "s": s.seq, "t": "READY", "d": {
                                "v": 10,
                                "user": {"id": BOT.to_string(), "username": "concierge", "discriminator": "0", "global_name": null, "avatar": null, "bot": true},
                                "guilds": [], "session_id": format!("fake-session-{}", s.sessions),
                                "resume_gateway_url": format!("ws://127.0.0.1:{ws_port}"), "shard": [0, 1],
                                "application": {"id": BOT.to_string(), "flags": 0}
                            }});
                            replies.push(ready.to_string());
                            s.gateway = Some(tx.clone());
                            }
                        }
                        Some(6) => {
                            s.resumes += 1;
                            let from = v["d"]["seq"].as_u64().unwrap_or(0);
                            replies.extend(s.events.iter().filter(|(seq, _)| *seq > from).map(|(_, t)| t.clone()));
                            replies.push(json!({"op": 0, "s": s.seq, "t": "RESUMED", "d": {}}).to_string());
                            s.gateway = Some(tx.clone());
                        }
                        _ => {}
                    }
                }
                if let Some(code) = close {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: "closed by the fake".into() };
                    let _ = sink.send(Ws::Close(Some(frame))).await;
                    return;
                }
                for r in replies {
                    if sink.send(Ws::Text(r)).await.is_err() {
                        return;
                    }
                }
            }
            cmd = rx.recv() => match cmd {
                Some(WsCmd::Send(text)) => {
                    if sink.send(Ws::Text(text)).await.is_err() {
                        return;
                    }
                }
                Some(WsCmd::Drop) | None => return,
            }
        }
    }
}
