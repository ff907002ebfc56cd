//! The one integration-test binary: every test starts a real server on port 0 with its own
//! temporary store and talks to it over HTTP, mostly through the generated client.

mod auth;
mod auth_matrix;
mod bad_input;
mod big_requests;
mod binary;
mod concurrency;
mod connections;
mod disk_faults;
mod durability;
mod generated_code;
mod generator;
mod helpers;
mod listeners;
mod logins;
mod oauth_flow;
mod persistence;
mod read_cache;
mod relay;
mod responses;
mod routing;
mod sdk_requests;
mod serde_wording;
mod serving;
mod settings;
mod shared_database;
mod slow_clients;
mod spec;
mod spec_drift;
mod spec_examples;
mod status;
mod test_control;
mod users;
mod webauthn;
