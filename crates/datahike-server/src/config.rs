//! The server's config map, as Datahike's server reads it:
//! `{:port 4444 :token "secret" :level :info :dev-mode false}` plus our limits.

use datahike::edn::{pr_str, read_str};
use datahike::Edn;

/// The server's settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// The TCP port; 0 picks a free one (`:port`, default 4444).
    pub port: u16,
    /// The address to listen on (`:host`, default `127.0.0.1`; `0.0.0.0` for every interface).
    pub host: String,
    /// The secret every request must present as `Authorization: token <secret>` (`:token`).
    pub token: Option<String>,
    /// No authentication (`:dev-mode true`): for development on one machine only.
    pub dev_mode: bool,
    /// The log level (`:level`: `:trace`, `:debug`, `:info`, `:warn`, `:error`).
    pub level: String,
    /// The largest request body accepted; larger gets 413 (`:max-body-bytes`, 16 MiB).
    pub max_body_bytes: usize,
    /// The longest a query may run, in milliseconds (`:query-timeout-ms`, 60 000); a query's
    /// own `:timeout` may only be shorter.
    pub query_timeout_ms: u64,
    /// How many transaction reports each database keeps for subscribers that resume
    /// (`:subscription-buffer`, 10 000).
    pub subscription_buffer: usize,
    /// `Cache-Control: max-age` for successful GET results (`:cache {:get {:max-age secs}}`).
    pub cache_max_age: Option<u64>,
    /// Origins allowed by CORS (`:access-control-allow-origin`, default the two
    /// `http://localhost` origins Datahike's server allows).
    pub allow_origins: Vec<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("port", &self.port)
            .field("host", &self.host)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("dev_mode", &self.dev_mode)
            .field("level", &self.level)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("query_timeout_ms", &self.query_timeout_ms)
            .field("subscription_buffer", &self.subscription_buffer)
            .field("cache_max_age", &self.cache_max_age)
            .field("allow_origins", &self.allow_origins)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 4444,
            host: "127.0.0.1".into(),
            token: None,
            dev_mode: false,
            level: "info".into(),
            max_body_bytes: 16 << 20,
            query_timeout_ms: 60_000,
            subscription_buffer: 10_000,
            cache_max_age: None,
            allow_origins: vec!["http://localhost".into(), "http://localhost:8080".into()],
        }
    }
}

impl ServerConfig {
    /// Reads EDN config text (the content of `server.edn`).
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let edn = read_str(text).map_err(|e| format!("the server config is not valid EDN: {e}"))?;
        ServerConfig::from_edn(&edn)
    }

    /// Reads a config map. Unknown keys are ignored (Datahike's server passes them to Jetty);
    /// a known key with a bad value is an error naming both. Without `:token` the server
    /// only starts in `:dev-mode`.
    pub fn from_edn(edn: &Edn) -> Result<ServerConfig, String> {
        let Edn::Map(entries) = edn else {
            return Err(format!("the server config must be a map, got {}", pr_str(edn)));
        };
        let mut config = ServerConfig::default();
        let bad =
            |key: &str, value: &Edn, what: &str| format!("server config {key} must be {what}, got {}", pr_str(value));
        let count = |key: &str, value: &Edn| match value {
            Edn::Int(n) if *n >= 0 => Ok(*n as u64),
            _ => Err(bad(key, value, "a non-negative integer")),
        };
        for (key, value) in entries {
            let Some(key) = key.as_keyword() else { continue };
            match key.as_str() {
                "port" => {
                    config.port = u16::try_from(count(":port", value)?).map_err(|_| bad(":port", value, "a port"))?;
                }
                "host" | "ip" => match value {
                    Edn::Str(s) => config.host = s.to_string(),
                    _ => return Err(bad(":host", value, "a string")),
                },
                "token" => match value {
                    Edn::Str(s) if !s.is_empty() => config.token = Some(s.to_string()),
                    Edn::Keyword(k) => config.token = Some(k.as_str().to_string()),
                    Edn::Nil => config.token = None,
                    _ => return Err(bad(":token", value, "a non-empty string")),
                },
                "dev-mode" => match value {
                    Edn::Bool(b) => config.dev_mode = *b,
                    Edn::Nil => config.dev_mode = false,
                    _ => return Err(bad(":dev-mode", value, "true or false")),
                },
                "level" => match value.as_keyword().map(|k| k.as_str().to_string()) {
                    Some(level) if ["trace", "debug", "info", "warn", "error"].contains(&level.as_str()) => {
                        config.level = level;
                    }
                    _ => return Err(bad(":level", value, "one of :trace :debug :info :warn :error")),
                },
                "max-body-bytes" => config.max_body_bytes = count(":max-body-bytes", value)? as usize,
                "query-timeout-ms" => config.query_timeout_ms = count(":query-timeout-ms", value)?.max(1),
                "subscription-buffer" => config.subscription_buffer = count(":subscription-buffer", value)? as usize,
                "cache" => {
                    if let Some(age) = value.get_kw("get").and_then(|g| g.get_kw("max-age")) {
                        config.cache_max_age = Some(count(":cache :get :max-age", age)?);
                    }
                }
                "access-control-allow-origin" => {
                    let items = match value {
                        Edn::Vector(xs) | Edn::List(xs) | Edn::Set(xs) => xs.clone(),
                        other => vec![other.clone()],
                    };
                    config.allow_origins = items
                        .iter()
                        .map(|x| match x {
                            Edn::Str(s) => Ok(s.to_string()),
                            // Datahike takes regexes; a `#"..."` literal reads as a tagged value or string.
                            other => Err(bad(":access-control-allow-origin", other, "strings")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                _ => {}
            }
        }
        if config.token.is_none() && !config.dev_mode {
            return Err("the server config has no :token; set :token \"...\" (clients send `Authorization: token ...`) or :dev-mode true for an unauthenticated development server".into());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_datahike_server_config() {
        let c = ServerConfig::parse(
            r#"{:port 4445 :token "secret" :level :debug :dev-mode false :cache {:get {:max-age 30}}}"#,
        )
        .unwrap();
        assert_eq!(
            (c.port, c.token.as_deref(), c.level.as_str(), c.cache_max_age),
            (4445, Some("secret"), "debug", Some(30))
        );
        assert_eq!(c.max_body_bytes, 16 << 20);
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn refuses_no_token_and_bad_values() {
        assert!(ServerConfig::parse("{:port 4444}").unwrap_err().contains(":token"));
        assert!(ServerConfig::parse("{:dev-mode true}").is_ok());
        assert!(ServerConfig::parse("{:dev-mode true :port 70000}").unwrap_err().contains(":port"));
        assert!(ServerConfig::parse("{:dev-mode true :level :loud}").unwrap_err().contains(":level"));
        assert!(ServerConfig::parse("[1]").unwrap_err().contains("must be a map"));
    }
}
