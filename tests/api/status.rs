//! The PrivX services' status endpoints: no token needed, one shape for all.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::helpers::{assert_matches_spec, spawn_app};

const SERVICES: [(&str, &str); 6] = [
    ("local-user-store", "user_store_status_view"),
    ("extender-service", "extender_status_view"),
    ("connection-manager", "connection_manager_status_view"),
    ("host-store", "host_store_status_view"),
    ("role-store", "role_store_status_view"),
    ("auth", "auth_status_view"),
];

#[tokio::test]
async fn every_service_answers_its_status_without_a_token() {
    let before = Utc::now();
    let app = spawn_app().await;
    let after = Utc::now();
    app.advance_clock(chrono::Duration::hours(1));
    for (service, operation) in SERVICES {
        let url = app.url(&format!("/{service}/api/v1/status"));
        // The Python SDK asks before it logs in, and with its token after; neither matters.
        let anonymous = app.anonymous.get(&url).send().await.unwrap();
        let garbage = app.anonymous.get(&url).bearer_auth("not-a-jwt").send().await.unwrap();
        let admin = app.http.get(&url).send().await.unwrap();
        let mut bodies = Vec::new();
        for response in [anonymous, garbage, admin] {
            assert_eq!(response.status().as_u16(), 200, "{url}");
            bodies.push(response.json::<Value>().await.unwrap());
        }
        let status = &bodies[0];
        assert!(bodies.iter().all(|b| b == status), "{service}: {bodies:?}");
        assert_matches_spec(operation, 200, status);
        assert_eq!(status["app_id"], service);
        assert_eq!(
            (&status["status_message"], &status["api_version"]),
            (&"OK".into(), &"v1".into())
        );
        assert!(
            status["server-mode"].is_string() && status["status_details"] == Value::Array(vec![])
        );
        let started: DateTime<Utc> = status["start_time"].as_str().unwrap().parse().unwrap();
        assert!(before <= started && started <= after, "the server's start: {started}");
    }
}
