//! What the server serves besides the API, and what its command line says.

use crate::helpers::spawn_app;

#[tokio::test]
async fn docs_spec_and_health_are_served() {
    let app = spawn_app().await;
    for (path, content_type, needle) in [
        ("/docs", "text/html", "id=\"search\""),
        ("/openapi.json", "application/json", "\"openapi\": \"3.0.3\""),
        ("/openapi.yaml", "application/yaml", "openapi: 3.0.3"),
        ("/healthz", "text/plain", "ok"),
    ] {
        let response = app.anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(header.starts_with(content_type), "{path}: {header}");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
}

#[test]
fn help_lists_every_flag_with_its_environment_variable_and_default() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_privx-mock"))
        .arg("--help")
        .output()
        .expect("the binary runs");
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--bind", "PRIVX_BIND"),
        ("--data-dir", "PRIVX_DATA_DIR"),
        ("--fixtures", "PRIVX_FIXTURES"),
        ("--config", "PRIVX_CONFIG"),
        ("--tls-cert", "PRIVX_TLS_CERT"),
        ("--tls-key", "PRIVX_TLS_KEY"),
        ("--admin-username", "PRIVX_ADMIN_USERNAME"),
        ("--admin-password", "PRIVX_ADMIN_PASSWORD"),
        ("--oauth-client-id", "PRIVX_OAUTH_CLIENT_ID"),
        ("--oauth-client-secret", "PRIVX_OAUTH_CLIENT_SECRET"),
        ("--log-level", "PRIVX_LOG_LEVEL"),
        ("--log-format", "PRIVX_LOG_FORMAT"),
        ("--log-file", "PRIVX_LOG_FILE"),
        ("--test-control", "PRIVX_TEST_CONTROL"),
        ("--deterministic", "PRIVX_DETERMINISTIC"),
        ("--accept-data-loss", "PRIVX_ACCEPT_DATA_LOSS"),
    ] {
        assert!(
            help.contains(flag) && help.contains(&format!("env: {env}")),
            "{flag} / {env}:\n{help}"
        );
    }
    for default in ["127.0.0.1:8080", "privx-data", "[default: info]", "[default: pretty]"] {
        assert!(help.contains(default), "{default}");
    }
    assert!(help.contains("--export") && help.contains("--import"));
}
