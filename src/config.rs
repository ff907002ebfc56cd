//! The server's configuration as a person writes it: the TOML config file's `auth` settings
//! and `[listeners]` table (merged with flags and environment by `main`) and the log format. Nothing here acts on it;
//! the store keeps the secrets it implies and `http::auth` checks callers against them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context as _;
use serde::Deserialize;
use uuid::Uuid;

/// The OAuth client id when none is configured.
pub const DEFAULT_OAUTH_CLIENT_ID: &str = "privx-external";
/// The bootstrap admin's username when none is configured.
pub const DEFAULT_ADMIN_USERNAME: &str = "admin";

/// The `auth` part of the configuration: what the config file, flags and environment give.
/// Secrets left out are generated at first start, kept (hashed) in the store and printed once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Token lifetime in seconds (default 3600).
    pub token_lifetime_sec: Option<u64>,
    /// The HS256 token signing key; by default one is generated and kept in the store.
    pub signing_key: Option<String>,
    /// The OAuth client the SDKs authenticate with (HTTP Basic) on the password grant.
    #[serde(default)]
    pub oauth_client: ClientConfig,
    /// The bootstrap admin.
    #[serde(default)]
    pub admin: AdminConfig,
    /// API clients: scripted callers with their own scopes.
    #[serde(default)]
    pub api_clients: Vec<ApiClientConfig>,
}

impl AuthConfig {
    /// The OAuth client's id, as configured or the default.
    pub fn oauth_client_id(&self) -> String {
        self.oauth_client.id.clone().unwrap_or_else(|| DEFAULT_OAUTH_CLIENT_ID.to_string())
    }

    /// The admin's username, as configured or the default.
    pub fn admin_username(&self) -> String {
        self.admin.username.clone().unwrap_or_else(|| DEFAULT_ADMIN_USERNAME.to_string())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: Option<String>,
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClientConfig {
    /// Its id, the token subject; by default derived from the name.
    pub id: Option<Uuid>,
    pub name: String,
    pub secret: String,
    pub scopes: Vec<String>,
}

impl ApiClientConfig {
    /// Its id as configured, or one derived from its name (the same at every start).
    pub fn id(&self) -> Uuid {
        self.id.unwrap_or_else(|| Uuid::new_v5(&Uuid::NAMESPACE_OID, self.name.as_bytes()))
    }
}

/// The `[listeners]` table: where extender listeners bind and where destinations lead.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersConfig {
    /// The host listeners bind on [default: 127.0.0.1].
    pub host: Option<IpAddr>,
    /// The ports listeners are given, `FIRST-LAST` [default: 40000-40999].
    pub ports: Option<PortRange>,
    /// Destination prefix -> the host its connections go to instead of the destination's
    /// own (so a local service can stand in for a remote network).
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
}

/// `FIRST-LAST` (or one port): the ports listeners are given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange(pub RangeInclusive<u16>);

impl TryFrom<String> for PortRange {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("a port range is FIRST-LAST, from 1 to 65535, got {text:?}");
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let port = |t: &str| t.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(invalid);
        let (first, last) = (port(first)?, port(last)?);
        if first > last {
            return Err(invalid());
        }
        Ok(Self(first..=last))
    }
}

/// The config file: `auth`'s keys at the top, and the `[listeners]` table.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub auth: AuthConfig,
    pub listeners: ListenersConfig,
    /// `database_url`: keep the state in this PostgreSQL database.
    pub database_url: Option<String>,
}

/// Reads the TOML config file (see the README for its keys).
pub fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let parsing = || format!("parsing the config file {}", path.display());
    let mut table: toml::Table = toml::from_str(&text).with_context(parsing)?;
    let listeners = match table.remove("listeners") {
        Some(listeners) => listeners.try_into().with_context(parsing)?,
        None => ListenersConfig::default(),
    };
    let database_url = match table.remove("database_url") {
        Some(url) => Some(url.try_into().with_context(parsing)?),
        None => None,
    };
    Ok(ConfigFile { auth: table.try_into().with_context(parsing)?, listeners, database_url })
}

/// The log format: `pretty` for people, `json` for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}
