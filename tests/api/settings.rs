//! The default service options: a stored settings document, or documented defaults.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with_fixtures};

#[tokio::test]
async fn defaults_allow_everything_without_byte_limits() {
    let app = spawn_app().await;
    let options = app.client.service_options_view().send().await.unwrap().into_inner();
    let options = serde_json::to_value(options).unwrap();
    assert_eq!(options["ssh"]["shell"], true);
    assert_eq!(options["rdp"]["clipboard"], true);
    assert_eq!(options["vnc"]["file_transfer"], true);
    assert_eq!(options["web"]["audio"], true);
    assert_eq!(options["db"]["max_bytes_download"], 0);
}

#[tokio::test]
async fn stored_options_are_served() {
    let stored = json!({"ssh": {"shell": false, "x11": false}, "db": {"max_bytes_upload": 1024}});
    let app =
        spawn_app_with_fixtures(json!({"settings": {"default_service_options": stored}})).await;
    let options = app.client.service_options_view().send().await.unwrap().into_inner();
    assert_eq!(serde_json::to_value(options).unwrap(), stored);
}
