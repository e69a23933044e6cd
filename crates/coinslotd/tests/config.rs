//! Configuration: defaults, file overrides, and errors that name the offending key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::io::Write;

use coinslotd::Config;

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn load_err(text: &str) -> String {
    let file = write_config(text);
    Config::load(Some(file.path())).unwrap_err().to_string()
}

#[test]
fn an_nwc_backend_is_configured_without_its_secret_in_the_file() {
    let file =
        write_config("[backend]\nkind = \"nwc\"\nconnection_file = \"/etc/coinslot/nwc.uri\"\n");
    let config = Config::load(Some(file.path())).unwrap();
    let coinslotd::BackendConfig::Nwc(nwc) = &config.backend else {
        panic!("not nwc: {:?}", config.backend);
    };
    assert_eq!(nwc.timeout_secs, 30);
    assert_eq!(config.network(), "mainnet");
    // The file is missing: the error names the key and the path.
    if std::env::var(coinslotd::config::NWC_URI_ENV).is_err() {
        let err = nwc.connection().unwrap_err().to_string();
        assert!(
            err.contains("backend.connection_file /etc/coinslot/nwc.uri"),
            "{err}"
        );
        let err = coinslotd::NwcBackendConfig::default()
            .connection()
            .unwrap_err()
            .to_string();
        assert!(err.contains("COINSLOT_NWC_URI"), "{err}");
    }
    let err = load_err("[backend]\nkind = \"nwc\"\ntimeout_secs = 0\n");
    assert!(err.contains("backend.timeout_secs"), "{err}");
    let err = load_err("[backend]\nkind = \"nwc\"\nconnection = \"nostr+walletconnect://x\"\n");
    assert!(err.contains("connection"), "{err}");
}

#[test]
fn no_config_means_a_sat_mint_on_3338() {
    let config = Config::load(None).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:3338");
    assert_eq!(config.data_dir, std::path::PathBuf::from("./coinslot-data"));
    assert_eq!(config.mint.units.len(), 1);
    assert_eq!(config.mint.units[0].name, "sat");
}

#[test]
fn file_overrides_defaults() {
    let file = write_config(
        r#"
        listen = "127.0.0.1:4000"
        [mint.info]
        name = "Arcade"
        [[mint.units]]
        name = "credit"
        input_fee_ppk = 100
        "#,
    );
    let config = Config::load(Some(file.path())).unwrap();
    assert_eq!(config.listen.port(), 4000);
    assert_eq!(config.mint.info.name, "Arcade");
    assert_eq!(config.mint.units[0].name, "credit");
    assert_eq!(config.mint.units[0].input_fee_ppk, 100);
    assert_eq!(
        config.mint.units[0].max_order, 32,
        "unset fields keep defaults"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let err = load_err("[[mint.units]]\nname = \"sat\"\nmax_order = \"lots\"\n");
    assert!(err.contains("max_order"), "{err}");
    assert!(err.contains("mint.units"), "{err}");
}

#[test]
fn unknown_key_is_refused_by_name() {
    let err = load_err("[mint]\nquote_ttl = 5\n");
    assert!(err.contains("quote_ttl"), "{err}");
}

#[test]
fn invalid_values_name_the_key() {
    let err = load_err("[[mint.units]]\nname = \"sat\"\n[[mint.units]]\nname = \"sat\"\n");
    assert!(err.contains("mint.units[1].name"), "{err}");
    let err = load_err("[[mint.units]]\nname = \"Bad Unit\"\n");
    assert!(err.contains("mint.units[0].name"), "{err}");
    let err = load_err("[[mint.units]]\nname = \"sat\"\nmin_mint = 10\nmax_mint = 5\n");
    assert!(err.contains("min_mint"), "{err}");
    let err = load_err("[backend]\nkind = \"lnd\"\n");
    assert!(err.contains("backend"), "{err}");
}

#[test]
fn missing_file_is_refused() {
    let err = Config::load(Some(std::path::Path::new("/nonexistent/coinslot.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn proxy_errors_name_the_key() {
    let upstream = |route: &str| {
        format!(
            r#"
            [[proxy.upstreams]]
            name = "api"
            url = "http://127.0.0.1:8080"
            routes = [ {route} ]
            "#
        )
    };
    let err = load_err(&upstream(r#"{ path = "/a", price = 2, unit = "usd" }"#));
    assert!(
        err.contains("proxy.upstreams[0].routes[0].unit") && err.contains("sat"),
        "{err}"
    );
    let err = load_err(&upstream(r#"{ path = "/a" }"#));
    assert!(
        err.contains("proxy.upstreams[0].routes[0]: missing `price`"),
        "{err}"
    );
    let err = load_err(&upstream(r#"{ path = "/a", price = 1, colour = "red" }"#));
    assert!(err.contains("colour"), "{err}");
    let err = load_err(
        r#"
        [[proxy.upstreams]]
        name = "api"
        url = "not a url"
        "#,
    );
    assert!(err.contains("proxy.upstreams[0].url"), "{err}");
    let err = load_err("public_url = \"ftp://x\"\n");
    assert!(err.contains("public_url"), "{err}");
    let err = load_err("[limits]\nmax_header_bytes = 10\n");
    assert!(err.contains("limits.max_header_bytes"), "{err}");
}

#[test]
fn a_full_product_config_loads() {
    let file = write_config(
        r#"
        public_url = "https://api.example.com/"
        [proxy]
        timeout_secs = 30
        [[proxy.upstreams]]
        name = "search"
        url = "http://127.0.0.1:8080"
        hosts = ["api.example.com"]
        unlisted = "free"
        routes = [
          { method = "GET", path = "/search", price = 2 },
          { method = "POST", path = "/v1/chat/{model}", price = 500, metered = true, description = "LLM" },
          { path = "/health", free = true },
        ]
        [admin]
        max_credit = 100000
        [topup]
        path = "/topup"
        [limits]
        per_ip_per_minute = 0
        [log]
        format = "json"
        "#,
    );
    let config = Config::load(Some(file.path())).unwrap();
    assert_eq!(config.public_url().unwrap(), "https://api.example.com");
    assert_eq!(config.proxy.upstreams[0].routes.len(), 3);
    assert!(config.proxy.upstreams[0].routes[1].metered);
    assert_eq!(config.admin.max_credit, Some(100_000));
    assert_eq!(config.topup.path, "/topup");
    assert_eq!(config.log.format, coinslotd::config::LogFormat::Json);
    let printed = config.to_redacted_toml().unwrap();
    let reparsed: Config = toml::from_str(&printed).unwrap();
    assert_eq!(
        reparsed, config,
        "the printed config must load back as the same config"
    );
}

#[test]
fn the_example_config_in_deploy_loads_as_the_defaults_say() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let defaults = Config::default();

    // The example documents every key with its default value; only its one upstream is not
    // a default (there are none). Comparing whole sections means a changed default in the
    // code fails here until the example says the same.
    let example = Config::load(Some(&deploy.join("coinslotd.example.toml"))).unwrap();
    assert_eq!(example.listen, defaults.listen);
    assert_eq!(example.data_dir, defaults.data_dir);
    assert_eq!(example.public_url, defaults.public_url);
    assert_eq!(example.mint, defaults.mint);
    assert_eq!(example.http, defaults.http);
    assert_eq!(example.backend, defaults.backend);
    assert_eq!(example.paywall, defaults.paywall);
    assert_eq!(example.admin, defaults.admin);
    assert_eq!(example.topup, defaults.topup);
    assert_eq!(example.limits, defaults.limits);
    assert_eq!(example.log, defaults.log);
    let mut without_upstreams = example.clone();
    without_upstreams.proxy.upstreams.clear();
    assert_eq!(
        without_upstreams, defaults,
        "everything but the example upstream is a default"
    );
    // The example upstream shows an upstream's own defaults and each kind of route.
    let upstream = &example.proxy.upstreams[0];
    assert!(upstream.hosts.is_empty());
    assert_eq!(upstream.prefix, "/");
    assert!(!upstream.strip_prefix);
    assert_eq!(upstream.unlisted, coinslot_proxy::Unlisted::Deny);
    let routes = &upstream.routes;
    assert!(routes
        .iter()
        .any(|r| r.price.is_some() && !r.metered && !r.free));
    assert!(routes
        .iter()
        .any(|r| r.metered && r.price.is_some() && r.description.is_some()));
    assert!(routes.iter().any(|r| r.free && r.price.is_none()));
    // Every key the code knows (unset options included: JSON keeps them as null) is written
    // in the example, set or commented out, as `key =` or as a table header `[...key]`.
    let text = std::fs::read_to_string(deploy.join("coinslotd.example.toml")).unwrap();
    fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    out.push(key.clone());
                    keys(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
            _ => {}
        }
    }
    let mut known = Vec::new();
    keys(&serde_json::to_value(&example).unwrap(), &mut known);
    for key in known {
        assert!(
            text.contains(&format!("{key} =")) || text.contains(&format!("{key}]")),
            "deploy/coinslotd.example.toml does not mention `{key}`"
        );
    }

    // The docker compose config: listens in the container, data in the volume, `/api/*` paid,
    // its health route free and listed before the paid catch-all.
    let compose = Config::load(Some(&deploy.join("compose.coinslotd.toml"))).unwrap();
    assert_eq!(compose.listen.to_string(), "0.0.0.0:3338");
    assert_eq!(
        compose.data_dir,
        std::path::PathBuf::from("/var/lib/coinslot")
    );
    assert_eq!(compose.public_url().unwrap(), "http://127.0.0.1:3338");
    assert_eq!(compose.backend, coinslotd::BackendConfig::default());
    let upstream = &compose.proxy.upstreams[0];
    assert_eq!(upstream.url, "http://whoami:8080");
    let paid = upstream
        .routes
        .iter()
        .position(|r| r.method == "GET" && r.path == "/api/*")
        .expect("a GET /api/* route");
    assert_eq!(upstream.routes[paid].price, Some(1));
    assert_eq!(upstream.routes[paid].unit, "sat");
    assert!(!upstream.routes[paid].free && !upstream.routes[paid].metered);
    let health = upstream
        .routes
        .iter()
        .position(|r| r.method == "GET" && r.path == "/api/health")
        .expect("a GET /api/health route");
    assert!(upstream.routes[health].free);
    assert!(
        health < paid,
        "first match wins: the free route must come first"
    );

    // The two-instance compose config: the same, plus the balancer's X-Forwarded-For trusted;
    // the database URL comes from the environment the compose file sets.
    let scale = Config::load(Some(&deploy.join("compose.scale.toml"))).unwrap();
    assert_eq!(scale.proxy.upstreams[0].routes, upstream.routes);
    assert!(scale.limits.trust_forwarded_for);
    assert_eq!(scale.store.url, None);
    let compose = std::fs::read_to_string(deploy.join("compose.scale.yml")).unwrap();
    assert!(compose.contains("COINSLOT_DATABASE_URL: postgres://"));
    assert!(
        compose.contains("coinslotd-a: *coinslotd") && compose.contains("coinslotd-b: *coinslotd")
    );
}

#[test]
fn the_top_up_page_cannot_hide_coinslotd_routes() {
    for path in [
        "/v1/info",
        "/admin",
        "/metrics",
        "/_coinslot/x",
        "topup",
        "/a b",
        "/{x}",
    ] {
        let err = load_err(&format!("[topup]\npath = \"{path}\"\n"));
        assert!(err.contains("topup.path"), "{path}: {err}");
    }
    let file = write_config("[topup]\npath = \"/buy-credit\"\n");
    assert_eq!(
        Config::load(Some(file.path())).unwrap().topup.path,
        "/buy-credit"
    );
}

#[test]
fn nostr_settings_are_checked_by_name() {
    let err = load_err("[nostr]\nrelays = [\"http://relay.example\"]");
    assert!(
        err.contains("nostr.relays") && err.contains("http://relay.example"),
        "{err}"
    );
    let err = load_err("[nostr]\nnetwork = \"moonnet\"");
    assert!(
        err.contains("nostr.network") && err.contains("moonnet"),
        "{err}"
    );
    let err = load_err("[[nostr.recommend]]\nmint_pubkey = \"02zz\"");
    assert!(
        err.contains("nostr.recommend[0]") && err.contains("02zz"),
        "{err}"
    );
    let file = write_config(
        r#"
        [nostr]
        relays = ["wss://relay.example", "ws://127.0.0.1:7777"]
        network = "mainnet"
        [[nostr.recommend]]
        mint_pubkey = "0212397cb71d4adc4fa58a78874a44731d22d5774c070076d201e3b1c03db23522"
        comment = "fast"
        "#,
    );
    let config = Config::load(Some(file.path())).unwrap();
    assert_eq!(config.nostr.relays.len(), 2);
    assert_eq!(config.network(), "mainnet");
    assert_eq!(Config::default().network(), "regtest");
}
