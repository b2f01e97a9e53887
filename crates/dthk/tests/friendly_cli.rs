//! Issue 15, the `dthk` items, end to end with the real binary on file stores: help per
//! command, suggestions for mistyped commands, shell completions, progress on a terminal,
//! `entity` of any value, the warning for an unknown attribute under attribute refs (the
//! check of Datahike's own CLI test script), and `-if` for transaction data.

mod common;

use common::{fails, file_config, ok, run};
use std::process::{Command, Stdio};

#[test]
fn each_command_has_its_help_and_a_mistyped_one_gets_a_suggestion() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    for command in ["transact", "query", "pull", "gc-storage", "load-entities"] {
        let help = ok(d, &[command, "--help"]);
        assert_eq!(help, ok(d, &["help", command]), "{command}");
        assert!(help.starts_with(command) && help.contains("Usage:") && help.contains("Example:"), "{help}");
        assert_ne!(help, ok(d, &["--help"]));
    }
    for (typed, meant) in [("transcat", "transact"), ("q", "query"), ("pul", "pull"), ("datomz", "datoms")] {
        let err = fails(d, &[typed, "conn:cfg.edn"], 1);
        assert!(err.starts_with(&format!("Unknown command: {typed} conn:cfg.edn")), "{err}");
        assert!(err.contains(&format!("Did you mean '{meant}'?")), "{typed}: {err}");
    }
    let err = fails(d, &["frobnicate"], 1);
    assert!(!err.contains("Did you mean"), "{err}");
    let err = fails(d, &["--fromat", "json", "schema"], 1);
    assert!(err.contains("Unknown option: \"--fromat\"") && err.contains("Did you mean '--format'?"), "{err}");
}

#[test]
fn shell_completions_cover_every_command() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(d, &["completions", shell]);
        for command in ["transact", "query", "gc-storage", "load-entities", "completions", "serve"] {
            assert!(script.contains(command), "{shell} completions lack {command}");
        }
        assert!(script.contains("format") && script.contains("tx-file"), "{shell}");
    }
    // The bash script is valid bash, and completes a command prefix.
    let script = ok(d, &["completions", "bash"]);
    std::fs::write(d.join("dthk.bash"), &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(d.join("dthk.bash")).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let probe =
        "source ./dthk.bash; COMP_WORDS=(dthk gc-st); COMP_CWORD=1; _dthk dthk gc-st dthk; echo \"${COMPREPLY[@]}\"";
    let out = Command::new("bash").arg("-c").arg(probe).current_dir(d).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("gc-storage"), "{out:?}");
    let err = fails(d, &["completions", "cmd.exe"], 1);
    assert!(err.contains("cmd.exe"), "{err}");
}

#[test]
fn entity_of_a_value_that_is_no_entity_id_prints_nil() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    common::file_db(d);
    for id in ["\"a\"", "abc", "1.5", "{:x 1}", "true"] {
        assert_eq!(ok(d, &["entity", "db:cfg.edn", id]), "nil\n", "{id}");
    }
    let known = ok(d, &["query", "[:find ?e . :where [?e :name \"a\"]]", "db:cfg.edn"]);
    assert!(ok(d, &["entity", "db:cfg.edn", known.trim()]).contains(":name \"a\""));
}

#[test]
fn an_unknown_attribute_under_attribute_refs_is_a_warning_on_stderr() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    common::write_file_config(d, "refs.edn", ":keep-history? true :attribute-refs? true :schema-flexibility :write");
    ok(d, &["create-database", "edn:refs.edn"]);
    // Datahike's own test: `dthk query '[:find ?e . :where [?e :nonexistent _]]' db:...` logs
    // a line naming the attribute on standard error; the result is nil.
    let out = run(d, &["query", "[:find ?e . :where [?e :nonexistent _]]", "db:refs.edn"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nil\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.contains("WARN") && l.contains(":nonexistent")), "{stderr}");
    // A known attribute: no warning.
    let out = run(d, &["query", "[:find ?e . :where [?e :db/ident :db/ident]]", "db:refs.edn"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `dthk args` with standard error on a pseudo-terminal (`script`), so that progress shows;
/// returns what the terminal saw.
fn on_terminal(dir: &std::path::Path, args: &[&str]) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_dthk").to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn load_entities_shows_progress_on_a_terminal_only() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    file_config(d);
    ok(d, &["create-database", "edn:cfg.edn"]);
    let rows: String =
        (0..3000).map(|i| format!("[{} :name \"n{i}\" {} true]", 1000 + i, 536870913 + i / 100)).collect();
    std::fs::write(d.join("rows.edn"), format!("[{rows}]")).unwrap();
    let seen = on_terminal(d, &["-f", "json", "load-entities", "conn:cfg.edn", "edn:rows.edn"]);
    let snippet = seen.find("loading").map(|i| &seen[i..seen.len().min(i + 300)]).unwrap_or("no progress bar");
    assert!(seen.contains("/3,000 datoms") || seen.contains("/3000 datoms"), "{snippet}");
    // Not a terminal: nothing but the result.
    let out = run(d, &["query", "[:find (count ?e) . :where [?e :name]]", "db:cfg.edn"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3000\n");
    let out = run(d, &["load-entities", "conn:cfg.edn", "[[5000 :name \"x\" 536870999 true]]"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn transaction_data_from_standard_input_in_the_input_format() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    file_config(d);
    ok(d, &["create-database", "edn:cfg.edn"]);
    let send = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dthk"))
            .args(args)
            .current_dir(d)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = send(&["-if", "json", "transact", "conn:cfg.edn"], br#"[{"name": "from-json"}]"#);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cbor = datahike::cbor::edn_to_cbor(&datahike::edn::read_str("[{:name \"from-cbor\"}]").unwrap());
    let out = send(&["transact", "-if", "cbor", "conn:cfg.edn", "-"], &cbor);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names = ok(d, &["query", "[:find [?n ...] :where [_ :name ?n]]", "db:cfg.edn"]);
    assert!(names.contains("from-json") && names.contains("from-cbor"), "{names}");
    // Input that is not what -if says is an error naming the format, and changes nothing.
    let out = send(&["-if", "json", "transact", "conn:cfg.edn"], b"[{:name \"edn\"}]");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON (-if json)"));
    assert_eq!(ok(d, &["query", "[:find (count ?e) . :where [?e :name]]", "db:cfg.edn"]), "2\n");
}
