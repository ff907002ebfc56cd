//! What a listener's `destination` and `source` mean: parsed once, when the API accepts them
//! and when a listener (re)starts, so the relay only ever sees valid rules.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// `PREFIX/HOST:PORT`: the extender's routing prefix and where it connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub prefix: String,
    pub host: String,
    pub port: u16,
}

impl Destination {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("destination must be PREFIX/HOST:PORT, got {text:?}");
        let (prefix, address) = text.split_once('/').ok_or_else(invalid)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let valid_host = host.parse::<IpAddr>().is_ok() || is_hostname(host);
        if prefix.is_empty() || prefix.contains(char::is_whitespace) || !valid_host || port == 0 {
            return Err(invalid());
        }
        Ok(Self { prefix: prefix.to_string(), host: host.to_string(), port })
    }

    /// The host to connect to: the one `routes` gives the prefix, else the destination's own.
    pub fn route<'a>(&'a self, routes: &'a BTreeMap<String, String>) -> (&'a str, u16) {
        (routes.get(&self.prefix).unwrap_or(&self.host), self.port)
    }
}

fn is_hostname(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// One allowed source: an address, a network, or a host name resolved when a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Network { address: IpAddr, prefix_len: u8 },
    Host(String),
}

impl Source {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("source must be an IP address, a CIDR or a host name, got {text:?}");
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, len)) => (address, Some(len.parse::<u8>().map_err(|_| invalid())?)),
            None => (text, None),
        };
        match address.parse::<IpAddr>() {
            Ok(address) => {
                let bits = if address.is_ipv4() { 32 } else { 128 };
                let prefix_len = prefix_len.unwrap_or(bits);
                if prefix_len > bits {
                    return Err(invalid());
                }
                Ok(Self::Network { address: address.to_canonical(), prefix_len })
            }
            Err(_) if prefix_len.is_none() && is_hostname(text) => Ok(Self::Host(text.to_string())),
            Err(_) => Err(invalid()),
        }
    }
}

/// The sources a listener accepts connections from; none means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources(pub Vec<Source>);

impl Sources {
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, String> {
        texts.iter().map(|t| Source::parse(t.as_ref())).collect::<Result<_, _>>().map(Self)
    }

    /// Whether a client at `client` may connect; host names are looked up only when no
    /// address or network lets it in.
    pub async fn allow(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        if self.0.is_empty() {
            return true;
        }
        let mut hosts = Vec::new();
        for source in &self.0 {
            match source {
                Source::Network { address, prefix_len } => {
                    if in_network(client, *address, *prefix_len) {
                        return true;
                    }
                }
                Source::Host(host) => hosts.push(host),
            }
        }
        for host in hosts {
            if let Ok(mut addresses) = tokio::net::lookup_host((host.as_str(), 0)).await {
                if addresses.any(|a| a.ip().to_canonical() == client) {
                    return true;
                }
            }
        }
        false
    }
}

fn in_network(client: IpAddr, network: IpAddr, prefix_len: u8) -> bool {
    match (client, network) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_as_privx_writes_them() {
        let d = Destination::parse("extender-1/db.internal:5432").unwrap();
        assert_eq!(
            (d.prefix.as_str(), d.host.as_str(), d.port),
            ("extender-1", "db.internal", 5432)
        );
        assert_eq!(Destination::parse("e/[::1]:22").unwrap().host, "::1");
        for bad in ["db:5432", "/db:5432", "e/db", "e/db:0", "e/db:x", "e/:80", "e/a b:1"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn sources_match_addresses_networks_and_names() {
        let sources = Sources::parse(&["10.0.0.0/8", "192.0.2.7", "localhost"]).unwrap();
        for allowed in ["10.1.2.3", "192.0.2.7", "127.0.0.1"] {
            assert!(sources.allow(allowed.parse().unwrap()).await, "{allowed}");
        }
        for refused in ["11.0.0.1", "192.0.2.8"] {
            assert!(!sources.allow(refused.parse().unwrap()).await, "{refused}");
        }
        assert!(Sources::default().allow("203.0.113.1".parse().unwrap()).await);
        let zero = Sources::parse(&["0.0.0.0/0"]).unwrap();
        assert!(zero.allow("203.0.113.1".parse().unwrap()).await);
        for bad in ["10.0.0.0/33", "10.0.0.0/x", "bad host", "a/b"] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }
}
