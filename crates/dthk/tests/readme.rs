//! Runs the README's query walkthrough (the shell block after `<!-- readme-queries -->`) with
//! the real `dthk` on a file store, and compares each result with the `;=>` line after it, so
//! the examples stay true as written.

use std::path::Path;
use std::process::Command;

/// Splits a shell line into words: single- and double-quoted parts, bare words; a `#` outside
/// quotes starts a comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    w.push(q);
                }
            }
            '#' if word.is_none() => break,
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

fn dthk(dir: &Path, args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dthk")).args(args).current_dir(dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dthk {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readme_query_examples_run_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("<!-- readme-queries -->").expect("the README marks its query walkthrough");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("readme-db");
    std::fs::write(
        dir.path().join("q.edn"),
        format!("{{:store {{:backend :file :path {:?}}}}}", store.display().to_string()),
    )
    .unwrap();
    let mut last: Option<(String, String)> = None;
    let mut checked = 0;
    for line in block.lines() {
        if let Some(expected) = line.strip_prefix(";=> ") {
            let (command, output) = last.take().expect("a result follows a command");
            let got = datahike::edn::read_str(&output).unwrap_or_else(|e| panic!("{command}: {output}: {e}"));
            let want = datahike::edn::read_str(expected).unwrap();
            assert_eq!(got, want, "README example: {command}");
            checked += 1;
            continue;
        }
        let words = shell_words(line);
        let Some((program, args)) = words.split_first() else { continue };
        assert_eq!(program, "dthk", "only dthk commands in the walkthrough: {line}");
        let output = dthk(dir.path(), args);
        if args[0] == "explain" {
            assert!(output.starts_with("=== Query Plan ===\n") && output.contains("rows"), "{output}");
        }
        last = Some((line.to_owned(), output));
    }
    assert!(checked >= 10, "only {checked} results checked");
}
