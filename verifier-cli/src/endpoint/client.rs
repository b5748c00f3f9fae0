//! One question to an OpenAI-compatible endpoint, and its answer: the request body, timeouts,
//! retries with backoff on 429, 5xx and transport failures, and the answer's text read out of
//! the reply. The API key goes in the `Authorization` header and nowhere else: no error or
//! excerpt of a reply ever carries it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which OpenAI route is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// `POST {base}/chat/completions`: the prompt is the one user message.
    Chat,
    /// `POST {base}/completions`: the prompt is sent as written.
    Completions,
}

/// What every request of an audit asks for; an answer is only comparable with answers asked
/// the same way, so the cache records these and refuses to mix them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestParams {
    pub route: Route,
    /// The `model` field sent (`None`: the server's default).
    pub model: Option<String>,
    pub max_tokens: u32,
    pub temperature: f64,
}

impl RequestParams {
    /// The JSON body that asks `prompt`.
    fn body(&self, prompt: &str) -> Value {
        let mut body = json!({
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": false,
        });
        match self.route {
            Route::Chat => body["messages"] = json!([{"role": "user", "content": prompt}]),
            Route::Completions => body["prompt"] = json!(prompt),
        }
        if let Some(model) = &self.model {
            body["model"] = json!(model);
        }
        body
    }
}

/// How patient the client is.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Bound on one request, connection to last byte.
    pub timeout: Duration,
    /// Further attempts after a failure worth retrying.
    pub retries: u32,
    /// The first wait between attempts; each later one doubles, up to `MAX_BACKOFF`.
    pub backoff: Duration,
}

/// The longest wait between two attempts, `Retry-After` included.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How much of a reply's body an error quotes.
const EXCERPT_CHARS: usize = 200;

/// The wait before attempt `attempt + 1` (attempt 0 is the first): the server's `Retry-After`
/// when it gave one, else `backoff · 2^attempt`; never more than a minute.
pub fn backoff_delay(backoff: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let doubled = backoff.saturating_mul(1u32 << attempt.min(16));
    retry_after.unwrap_or(doubled).min(MAX_BACKOFF)
}

/// An answer, as the endpoint gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    /// The model the server says answered (`None` when it did not say).
    pub model: Option<String>,
    pub finish_reason: Option<String>,
}

/// Why a question got no answer. Each message is one line and names the URL asked.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("{url}: unreachable after {attempts} attempt(s): {reason}")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url}: HTTP {status} after {attempts} attempt(s): {excerpt}")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
        excerpt: String,
    },
    #[error("{url}: malformed response (not the OpenAI JSON): {reason}: {excerpt}")]
    Malformed {
        url: String,
        reason: String,
        excerpt: String,
    },
    #[error("{url}: the response holds no answer text ({missing}): {excerpt}")]
    NoContent {
        url: String,
        missing: &'static str,
        excerpt: String,
    },
    #[error("{url}: request failed after {attempts} attempt(s): {reason}")]
    Failed {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url}: not a usable URL: {reason}")]
    BadUrl { url: String, reason: String },
}

/// What one attempt came to.
enum Attempt {
    Done(Reply),
    /// Worth another try, after the server's `Retry-After` if it gave one.
    Retry(AskError, Option<Duration>),
    Fail(AskError),
}

/// A client of one endpoint.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    /// The route's URL, e.g. `http://127.0.0.1:8000/v1/chat/completions`.
    url: String,
    /// Never printed; `Debug` shows only whether there is one.
    api_key: Option<ApiKey>,
    params: RequestParams,
    patience: Patience,
}

/// The API key: its `Debug` is redacted, so that no log of a client shows it.
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

impl Client {
    /// A client asking `{base}/chat/completions` (or `/completions`) of the endpoint at `base`
    /// (e.g. `http://HOST:PORT/v1`).
    pub fn new(
        base: &str,
        api_key: Option<String>,
        params: RequestParams,
        patience: Patience,
    ) -> Client {
        let route = match params.route {
            Route::Chat => "chat/completions",
            Route::Completions => "completions",
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(patience.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("tracemark/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            url: format!("{}/{route}", base.trim_end_matches('/')),
            api_key: api_key.map(ApiKey),
            params,
            patience,
        }
    }

    /// The URL asked, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks `prompt`, retrying what is worth retrying; `stop` is polled between attempts, so
    /// that a failed audit does not wait out every other worker's backoff.
    pub fn ask(&self, prompt: &str, stop: &dyn Fn() -> bool) -> Result<Reply, AskError> {
        let body = self.params.body(prompt).to_string();
        let mut attempt = 0;
        loop {
            match self.attempt(&body, attempt + 1) {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(error, _) if attempt >= self.patience.retries || stop() => {
                    return Err(error)
                }
                Attempt::Retry(_, retry_after) => {
                    std::thread::sleep(backoff_delay(self.patience.backoff, attempt, retry_after));
                    attempt += 1;
                }
            }
        }
    }

    /// One request; `attempts` counts it, for messages.
    fn attempt(&self, body: &str, attempts: u32) -> Attempt {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(ApiKey(key)) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = match request.send(body) {
            Ok(response) => response,
            Err(e) => return self.transport_failure(e, attempts),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match response.body_mut().read_to_string() {
            Ok(text) => text,
            Err(e) => return self.transport_failure(e, attempts),
        };
        if (200..300).contains(&status) {
            return match parse_reply(&text, self.params.route) {
                Ok(reply) => Attempt::Done(reply),
                Err(e) => Attempt::Fail(self.reply_error(e, &text)),
            };
        }
        let error = AskError::Status {
            url: self.url.clone(),
            status,
            attempts,
            excerpt: self.excerpt(&text),
        };
        if status == 408 || status == 429 || status >= 500 {
            Attempt::Retry(error, retry_after)
        } else {
            Attempt::Fail(error)
        }
    }

    /// A request that got no HTTP reply: the server could not be reached or dropped the
    /// connection (retried), or something retrying cannot fix (a bad URL, a TLS refusal).
    fn transport_failure(&self, e: ureq::Error, attempts: u32) -> Attempt {
        let reason = self.scrub(&e.to_string());
        let url = self.url.clone();
        match e {
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                Attempt::Fail(AskError::BadUrl { url, reason })
            }
            e if unreachable(&e) => Attempt::Retry(
                AskError::Unreachable {
                    url,
                    attempts,
                    reason,
                },
                None,
            ),
            _ => Attempt::Fail(AskError::Failed {
                url,
                attempts,
                reason,
            }),
        }
    }

    fn reply_error(&self, e: ReplyError, text: &str) -> AskError {
        let excerpt = self.excerpt(text);
        match e {
            ReplyError::NotJson(reason) => AskError::Malformed {
                url: self.url.clone(),
                reason,
                excerpt,
            },
            ReplyError::Missing(missing) => AskError::NoContent {
                url: self.url.clone(),
                missing,
                excerpt,
            },
        }
    }

    /// The start of a reply's body, on one line, without the API key.
    fn excerpt(&self, text: &str) -> String {
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut excerpt: String = flat.chars().take(EXCERPT_CHARS).collect();
        if flat.chars().count() > EXCERPT_CHARS {
            excerpt.push('…');
        }
        if excerpt.is_empty() {
            excerpt.push_str("(empty body)");
        }
        self.scrub(&excerpt)
    }

    /// `text` with the API key, should a server echo it, replaced.
    fn scrub(&self, text: &str) -> String {
        match &self.api_key {
            Some(ApiKey(key)) if !key.is_empty() => text.replace(key.as_str(), "[api key]"),
            _ => text.to_string(),
        }
    }
}

/// Whether `e` says the server could not be reached, or went away mid-request: worth
/// retrying, as a server being restarted or overloaded does.
fn unreachable(e: &ureq::Error) -> bool {
    use std::io::ErrorKind::*;
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | BrokenPipe
                | TimedOut
                | UnexpectedEof
                | Interrupted
        ),
        _ => false,
    }
}

/// Why a 2xx reply is not an answer.
#[derive(Debug, PartialEq)]
enum ReplyError {
    NotJson(String),
    Missing(&'static str),
}

/// The answer in an OpenAI reply: `choices[0].message.content` (chat) or `choices[0].text`.
fn parse_reply(text: &str, route: Route) -> Result<Reply, ReplyError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ReplyError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ReplyError::NotJson("not a JSON object".into()));
    }
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or(ReplyError::Missing("no choices[0]"))?;
    let content = match route {
        Route::Chat => choice
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .ok_or(ReplyError::Missing("no choices[0].message.content string"))?,
        Route::Completions => choice
            .get("text")
            .and_then(Value::as_str)
            .ok_or(ReplyError::Missing("no choices[0].text string"))?,
    };
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    Ok(Reply {
        text: content.to_string(),
        model: string(value.get("model")),
        finish_reason: string(choice.get("finish_reason")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(route: Route) -> RequestParams {
        RequestParams {
            route,
            model: Some("m".into()),
            max_tokens: 48,
            temperature: 1.0,
        }
    }

    #[test]
    fn bodies_follow_the_openai_wire_format() {
        let chat = params(Route::Chat).body("hi");
        assert_eq!(chat["messages"][0]["role"], "user");
        assert_eq!(chat["messages"][0]["content"], "hi");
        assert_eq!(chat["max_tokens"], 48);
        assert_eq!(chat["model"], "m");
        assert!(chat.get("prompt").is_none());
        let plain = params(Route::Completions).body("hi");
        assert_eq!(plain["prompt"], "hi");
        assert!(plain.get("messages").is_none());
    }

    #[test]
    fn replies_are_read_or_refused_with_the_reason() {
        let chat =
            r#"{"model":"x","choices":[{"message":{"content":"yes"},"finish_reason":"length"}]}"#;
        let reply = parse_reply(chat, Route::Chat).expect("a chat reply");
        assert_eq!(reply.text, "yes");
        assert_eq!(reply.model.as_deref(), Some("x"));
        assert_eq!(reply.finish_reason.as_deref(), Some("length"));
        let plain = r#"{"choices":[{"text":"ok"}]}"#;
        assert_eq!(
            parse_reply(plain, Route::Completions).map(|r| r.text),
            Ok("ok".into())
        );
        assert!(matches!(
            parse_reply("<html>", Route::Chat),
            Err(ReplyError::NotJson(_))
        ));
        assert!(matches!(
            parse_reply("[1]", Route::Chat),
            Err(ReplyError::NotJson(_))
        ));
        let empty = r#"{"choices":[]}"#;
        assert!(matches!(
            parse_reply(empty, Route::Chat),
            Err(ReplyError::Missing(_))
        ));
        let null = r#"{"choices":[{"message":{"content":null}}]}"#;
        assert!(matches!(
            parse_reply(null, Route::Chat),
            Err(ReplyError::Missing(_))
        ));
        // A chat reply read as a plain completion has no `text`.
        assert!(matches!(
            parse_reply(chat, Route::Completions),
            Err(ReplyError::Missing(_))
        ));
    }

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff_delay(base, 0, None), Duration::from_millis(500));
        assert_eq!(backoff_delay(base, 3, None), Duration::from_secs(4));
        assert_eq!(backoff_delay(base, 30, None), MAX_BACKOFF);
        let told = Some(Duration::from_secs(7));
        assert_eq!(backoff_delay(base, 0, told), Duration::from_secs(7));
        assert_eq!(
            backoff_delay(base, 0, Some(Duration::from_secs(3600))),
            MAX_BACKOFF
        );
    }

    #[test]
    fn excerpts_are_one_short_line_without_the_key() {
        let client = Client::new(
            "http://127.0.0.1:9/v1/",
            Some("sk-secret".into()),
            params(Route::Chat),
            Patience {
                timeout: Duration::from_secs(1),
                retries: 0,
                backoff: Duration::from_millis(1),
            },
        );
        assert_eq!(client.url(), "http://127.0.0.1:9/v1/chat/completions");
        let excerpt = client.excerpt(&format!("bad key\nsk-secret\n{}", "x".repeat(500)));
        assert!(!excerpt.contains("sk-secret") && !excerpt.contains('\n'));
        assert!(excerpt.starts_with("bad key [api key] x"));
        assert!(excerpt.chars().count() <= EXCERPT_CHARS + 1);
        assert!(!format!("{client:?}").contains("sk-secret"));
    }
}
