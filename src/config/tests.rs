//! The settings' parsers and their redaction (the whole file is test code).

#[cfg(test)]
use super::*;

#[test]
fn the_public_url_is_an_http_url_kept_without_its_trailing_slash() {
    let ok = |s: &str| parse_public_url(s).ok();
    assert_eq!(
        ok("https://a.example/").as_deref(),
        Some("https://a.example")
    );
    assert_eq!(
        ok("http://10.0.0.2:80").as_deref(),
        Some("http://10.0.0.2:80")
    );
    for bad in [
        "a.example",
        "ftp://x",
        "https://",
        "https://a b",
        "http://x/?q",
    ] {
        assert!(ok(bad).is_none(), "{bad}");
    }
}

#[test]
fn debug_output_never_shows_the_api_key() {
    let mut c = ServeConfig::new("x.db");
    c.api_key = Some("super-secret-key-123".into());
    let shown = format!("{c:?}");
    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn the_command_line_parses() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from([
        "axme",
        "serve",
        "--push-retry-schedule",
        "500ms,2s,1m",
        "--push-deny-private",
    ])
    .expect("parses");
    let Command::Serve(c) = cli.command else {
        panic!("serve parsed as another command")
    };
    assert_eq!(
        c.push_settings().policy.schedule,
        vec![
            Duration::from_millis(500),
            Duration::from_secs(2),
            Duration::from_secs(60)
        ]
    );
    assert!(c.push_deny_private);
    assert!(Cli::try_parse_from(["axme", "serve", "--push-retry-schedule", "5x"]).is_err());
}

#[test]
fn retention_is_one_duration_or_off() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["axme", "serve"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| {
            let Command::Serve(c) = cli.command else {
                panic!("serve parses as the serve command");
            };
            (c.retention, c.log_format, c.metrics_public)
        })
    };
    assert_eq!(
        parse(&[]).expect("defaults"),
        (
            Retention(Some(Duration::from_secs(30 * 86_400))),
            LogFormat::Text,
            false
        )
    );
    let hours = Retention(Some(Duration::from_secs(12 * 3600)));
    assert_eq!(parse(&["--retention", "12h"]).expect("12h").0, hours);
    assert_eq!(
        parse(&["--retention", "off"]).expect("off").0,
        Retention(None)
    );
    assert_eq!(parse(&["--retention", "0"]).expect("0").0, Retention(None));
    assert!(parse(&["--retention", "1d,2d"]).is_err());
    assert!(parse(&["--retention", "soon"]).is_err());
    let json = parse(&["--log-format", "json", "--metrics-public"]).expect("json");
    assert_eq!((json.1, json.2), (LogFormat::Json, true));
    assert!(parse(&["--log-format", "xml"]).is_err());
}
