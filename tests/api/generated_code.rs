//! The committed copies in `generated/` are exactly what build.rs produces from the spec now.

const REFRESH: &str = "EXPECTORATE=overwrite cargo test --test api generated_code";

fn assert_generated(committed: &str, built: &str) {
    let on_disk = std::fs::read_to_string(crate::helpers::repo_path(committed)).unwrap_or_default();
    if on_disk != built && std::env::var_os("EXPECTORATE").is_none() {
        // expectorate's diff follows; the command is what a reader needs first.
        eprintln!("{committed} is stale: refresh it with `{REFRESH}`");
    }
    expectorate::assert_contents(committed, built);
}

#[test]
fn generated_code_api_matches_build_output() {
    assert_generated(
        "generated/privx_api.rs",
        include_str!(concat!(env!("OUT_DIR"), "/privx_api.rs")),
    );
}

#[test]
fn generated_code_client_matches_build_output() {
    assert_generated(
        "generated/privx_client.rs",
        include_str!(concat!(env!("OUT_DIR"), "/privx_client.rs")),
    );
}

#[test]
fn generated_code_docs_match_build_output() {
    assert_generated("generated/docs.html", include_str!(concat!(env!("OUT_DIR"), "/docs.html")));
}
