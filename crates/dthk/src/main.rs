//! `dthk`, Datahike's command line tool: `dthk [options] <command> [arguments]`, with the
//! commands, argument prefixes and output formats of Datahike's own `dthk`.
//!
//! ```text
//! dthk create-database edn:cfg.edn
//! dthk transact conn:cfg.edn '[{:name "Alice" :age 20}]'
//! dthk -f json datoms db:cfg.edn :eavt 1
//! ```
//!
//! Exit codes: 0 success, 1 bad usage or a failed command, 2 a command or prefix that a later
//! version implements. Results go to standard output; errors and logs to standard error.

mod cli;
mod input;
mod log;
mod output;
mod progress;

use cli::Options;
use datahike::api::{self, Category, Op, OPS};
use input::{Arg, InputError};
use output::Format;
use std::io::{IsTerminal, Read};

/// Exit code of a failed command or bad usage.
const EXIT_ERROR: i32 = 1;
/// Exit code of a command or prefix that this version does not implement yet.
const EXIT_NOT_IMPLEMENTED: i32 = 2;

fn main() {
    ignore_file_size_signal();
    // Arguments that are not UTF-8 are refused by position, never a panic.
    let mut args = Vec::new();
    for (i, arg) in std::env::args_os().skip(1).enumerate() {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(raw) => {
                eprintln!("❌ argument {} is not valid UTF-8: {:?}", i + 1, raw);
                std::process::exit(EXIT_ERROR);
            }
        }
    }
    std::process::exit(run(args));
}

/// A write past the process's file size limit (`ulimit -f`) raises SIGXFSZ, whose default
/// action kills the process without a word. Ignored, the write fails with EFBIG instead, and
/// the store reports it as an error naming the file, like a full disk; nothing acknowledged
/// is lost either way.
#[cfg(unix)]
#[expect(unsafe_code, reason = "setting a signal's disposition is unsafe in libc; SIG_IGN runs no code of ours")]
fn ignore_file_size_signal() {
    // SAFETY: called first thing in `main`, before any thread starts; SIG_IGN installs no
    // handler, so no code runs in signal context.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn ignore_file_size_signal() {}

/// Runs `dthk` with these arguments and returns the exit code.
fn run(args: Vec<String>) -> i32 {
    let (options, invocation) = match cli::parse(args) {
        Ok(parsed) => parsed,
        Err(cli::UsageError(message)) => {
            eprintln!("{message}");
            return EXIT_ERROR;
        }
    };
    if options.verbosity > 3 {
        eprintln!("Verbosity level not supported: {}", options.verbosity);
        return EXIT_ERROR;
    }
    if let cli::Invocation::Serve(args) = &invocation {
        if !options.help {
            return serve(args, options.verbosity);
        }
    }
    log::set_verbosity(options.verbosity);
    log::debug(&format!("options {options:?}, command {}", invocation.describe()));
    let (name, raw) = match invocation {
        cli::Invocation::Nothing if options.help => {
            print!("{}", usage());
            return 0;
        }
        cli::Invocation::Nothing if options.version => {
            println!("Datahike {} (datahike-rs)", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        cli::Invocation::Nothing => {
            eprint!("{}", usage());
            return EXIT_ERROR;
        }
        cli::Invocation::Help(name) => return command_help(name.as_deref()),
        // `dthk COMMAND --help` is `dthk help COMMAND`.
        cli::Invocation::Serve(_) => return command_help(Some("serve")),
        cli::Invocation::Completions(_) if options.help => return command_help(Some("completions")),
        cli::Invocation::Completions(shell) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::command(), "dthk", &mut script);
            return match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("❌ Error writing the completion script: {e}");
                    EXIT_ERROR
                }
                _ => 0,
            };
        }
        cli::Invocation::Command { name, .. } if options.help => return command_help(Some(&name)),
        cli::Invocation::Command { name, args } => (name, args),
    };
    let Some(op) = api::find(&name) else {
        eprintln!("Unknown command: {name}\n\nUse 'dthk --help' to see available commands.");
        return EXIT_ERROR;
    };
    let raw = &raw[..];
    let Some(implementation) = op.run else {
        eprintln!("Command '{}' is not implemented yet in this version", op.name);
        return EXIT_NOT_IMPLEMENTED;
    };
    match &execute(op, implementation, raw, &options) {
        Ok(datahike::Edn::Str(plan))
            if op.name == "explain" && matches!(options.format, output::Format::Edn | output::Format::Pprint) =>
        {
            print!("{plan}");
            0
        }
        Ok(result) => {
            if let Err(e) = output::write(options.format, result) {
                // A closed pipe (`dthk ... | head`) is not worth a message.
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("❌ Error writing the result: {e}");
                    return EXIT_ERROR;
                }
            }
            0
        }
        Err(Failure::Invalid(message)) => {
            eprintln!("{message}");
            EXIT_ERROR
        }
        Err(Failure::Execution(message)) => {
            eprintln!("❌ Error executing command: {message}");
            EXIT_ERROR
        }
        Err(Failure::Library(error)) => {
            eprintln!("❌ Error executing command: {error}");
            if options.format_given {
                // The error as data, `{:message .. :error :code ...}`, for scripts.
                let _ = output::write(options.format, &error.to_edn());
            }
            EXIT_ERROR
        }
    }
}

/// `dthk serve` in a build without the `server` feature.
#[cfg(not(feature = "server"))]
fn serve(_: &[String], _: u8) -> i32 {
    eprintln!("this dthk was built without the server; rebuild with `--features server`");
    EXIT_NOT_IMPLEMENTED
}

/// `dthk serve server.edn`: Datahike's HTTP server, until SIGINT or SIGTERM.
#[cfg(feature = "server")]
fn serve(args: &[String], verbosity: u8) -> i32 {
    let [path] = args else {
        eprintln!("Usage: dthk serve SERVER-CONFIG\n\n  e.g. dthk serve server.edn with {{:port 4444 :token \"secret\" :level :info}}");
        return EXIT_ERROR;
    };
    let path = path.strip_prefix("edn:").unwrap_or(path);
    let config = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the server config {path}: {e}"))
        .and_then(|text| datahike_server::ServerConfig::parse(&text).map_err(|e| format!("{path}: {e}")));
    let config = match config {
        Ok(config) => config,
        Err(message) => {
            eprintln!("❌ {message}");
            return EXIT_ERROR;
        }
    };
    let level = match config.level.as_str() {
        "error" | "warn" => 0,
        "info" => 1,
        "debug" => 2,
        _ => 3,
    };
    log::set_verbosity(verbosity.max(level));
    match datahike_server::serve(config) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("❌ {message}");
            EXIT_ERROR
        }
    }
}

/// Why a command did not produce a result.
enum Failure {
    /// The arguments fit no arity; the whole message.
    Invalid(String),
    /// Reading input, connecting or the operation failed.
    Execution(String),
    /// The operation failed; its error carries data.
    Library(datahike::Error),
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Failed(m) => Failure::Execution(m),
        }
    }
}

/// Where an argument's text comes from.
enum Source {
    /// A command line argument, prefixes and all.
    Argument(String),
    /// The content of `--tx-file` or standard input, read in the `-if` format (EDN by default).
    Content { bytes: Vec<u8>, origin: String },
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Execution(format!("cannot read standard input: {e}")))?;
    Ok(bytes)
}

/// Content in the `-if` format: EDN, JSON (Datahike's tagged conventions) or CBOR.
fn read_content(bytes: &[u8], origin: &str, format: Format) -> Result<datahike::Edn, Failure> {
    let text =
        || std::str::from_utf8(bytes).map_err(|e| Failure::Execution(format!("{origin} is not UTF-8 text: {e}")));
    match format {
        Format::Json => datahike::edn::json::from_tagged_json(text()?)
            .map_err(|e| Failure::Execution(format!("{origin} is not valid JSON (-if json): {e}"))),
        Format::Cbor => datahike::cbor::edn_from_cbor(bytes)
            .map_err(|e| Failure::Execution(format!("{origin} is not valid CBOR (-if cbor): {e}"))),
        Format::Edn | Format::Pprint => Ok(input::read_edn_text(text()?, origin)?),
    }
}

/// The argument sources after `--tx-file` and standard input are put in place.
fn sources(op: &Op, raw: &[String], options: &Options) -> Result<Vec<Source>, Failure> {
    let mut sources: Vec<Source> = raw.iter().cloned().map(Source::Argument).collect();
    if let Some(path) = &options.tx_file {
        let Some(slot) = op.file_arg else {
            log::warn(&format!("--tx-file not supported for command: {}", op.name));
            return Ok(sources);
        };
        let bytes =
            std::fs::read(path).map_err(|e| Failure::Execution(format!("cannot read --tx-file {path}: {e}")))?;
        let content = Source::Content { bytes, origin: format!("--tx-file {path}") };
        sources.insert(slot.min(sources.len()), content);
        return Ok(sources);
    }
    let Some(slot) = op.stdin_arg else {
        return Ok(sources);
    };
    if raw.get(slot).map(String::as_str) == Some("-") {
        sources[slot] = Source::Content { bytes: read_stdin()?, origin: "standard input".into() };
    } else if raw.len() == slot && !std::io::stdin().is_terminal() {
        sources.push(Source::Content { bytes: read_stdin()?, origin: "standard input".into() });
    }
    Ok(sources)
}

/// Parses, validates and runs. Connections opened for `conn:` arguments are released after.
fn execute(op: &Op, implementation: api::Run, raw: &[String], options: &Options) -> Result<datahike::Edn, Failure> {
    let mut args: Vec<Arg> = Vec::new();
    let result = parse_and_run(op, implementation, raw, options, &mut args);
    for arg in &args {
        if let Arg::Conn(conn) = arg {
            if let Err(e) = conn.release() {
                log::warn(&format!("releasing the connection failed: {e}"));
            }
        }
    }
    result
}

fn parse_and_run(
    op: &Op,
    implementation: api::Run,
    raw: &[String],
    options: &Options,
    args: &mut Vec<Arg>,
) -> Result<datahike::Edn, Failure> {
    let sources = sources(op, raw, options)?;
    let mut remote = false;
    for source in &sources {
        if let Source::Argument(text) = source {
            remote |= input::remote_form(text)?.is_some();
        }
    }
    if remote {
        return run_remote(op, sources, options.input_format);
    }
    for (i, source) in sources.into_iter().enumerate() {
        let arg = match source {
            Source::Argument(text) => input::parse(&text)?,
            Source::Content { bytes, origin } => Arg::Data(read_content(&bytes, &origin, options.input_format)?),
        };
        // Datahike passes text that is not EDN on as a string; transaction data that is not
        // EDN is a mistake worth pointing at.
        if let (Some(slot), Arg::Text { error, .. }) = (op.stdin_arg.or(op.file_arg), &arg) {
            if slot == i {
                return Err(Failure::Invalid(format!(
                    "❌ Invalid arguments for '{}': argument {} is not valid EDN: error at {}:{}: {}",
                    op.name,
                    i + 1,
                    error.line(),
                    error.column(),
                    error.message()
                )));
            }
        }
        log::trace(&format!("argument {}: {}", i + 1, arg.describe()));
        args.push(arg);
    }
    if !op.fits(args) {
        let got: Vec<String> = args.iter().map(Arg::describe).collect();
        return Err(Failure::Invalid(format!(
            "❌ Invalid arguments for '{}':\n\n  Expected: {}\n  Got:      [{}]\n\n  Error:    {}\n\n  Example:  {}\n",
            op.name,
            op.all_usages().join("\n            "),
            got.join(" "),
            op.mismatch(args),
            op.example
        )));
    }
    warn_memory_config(op, args);
    log::info(&format!("running {}", op.api));
    let bar = match op.name {
        "export" => Some(progress::Bar::new("exporting")),
        "import" => Some(progress::Bar::new("importing")),
        "load-entities" => Some(progress::Bar::new("loading")),
        _ => None,
    };
    let update = |p: &datahike::migrate::Progress| {
        if let Some(bar) = &bar {
            bar.update(p);
        }
    };
    if op.name == "gc-storage" && !options.keys {
        return gc_summary(args).map_err(Failure::Library);
    }
    let context = api::Context { progress: Some(&update) };
    let result = implementation(args, &context);
    if let Some(bar) = &bar {
        bar.finish();
    }
    result.map_err(Failure::Library)
}

/// `dthk gc-storage` without `--keys`: what the collection deleted, by kind, the bytes it
/// freed and what it kept, rather than every deleted key (the library's answer, which
/// `--keys` prints).
fn gc_summary(args: &[Arg]) -> datahike::Result<datahike::Edn> {
    use datahike::Edn;
    let Some(Arg::Conn(conn)) = args.first() else {
        return Err(datahike::Error::Argument(datahike::Detail::new("gc-storage needs a connection (conn:CONFIG)")));
    };
    let remove_before = match args.get(1) {
        Some(Arg::Data(Edn::Inst(ms) | Edn::Int(ms))) => Some(*ms),
        _ => None,
    };
    let spinner = progress::Spinner::new("collecting garbage");
    let report = conn.gc_storage(remove_before);
    spinner.finish();
    let report = report?;
    let count = |n: usize| Edn::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let entries = |pairs: &[(&str, usize)]| Edn::Map(pairs.iter().map(|(k, n)| (Edn::kw(k), count(*n))).collect());
    Ok(Edn::Map(vec![
        (
            Edn::kw("deleted"),
            entries(&[
                ("total", report.deleted.len()),
                ("nodes", report.deleted_nodes),
                ("values", report.deleted_values),
                ("commits", report.deleted_commits),
                ("packs", report.deleted_packs),
                ("temporaries", report.deleted_temporaries),
            ]),
        ),
        // nil where the backend cannot tell sizes cheaply (S3, GCS, DynamoDB).
        (
            Edn::kw("freed-bytes"),
            report.freed_bytes.map_or(Edn::Nil, |b| Edn::Int(i64::try_from(b).unwrap_or(i64::MAX))),
        ),
        (
            Edn::kw("kept"),
            entries(&[("commits", report.kept_commits), ("nodes", report.kept_nodes), ("values", report.kept_values)]),
        ),
    ]))
}

/// A config without `:store` is a memory database, which vanishes when `dthk` exits: say so.
fn warn_memory_config(op: &Op, args: &[Arg]) {
    let first_is_config = op.arities.iter().any(|a| a.first() == Some(&api::Param::Config));
    let config = match args.first() {
        None if first_is_config => None,
        Some(Arg::Data(edn)) if first_is_config => Some(edn),
        _ => return,
    };
    if config.is_none_or(|c| c.get_kw("store").is_none()) {
        log::warn(&format!(
            "the config has no :store, so {} works on a memory database that vanishes when dthk exits; add :store {{:backend :file :path \"...\"}}",
            op.name
        ));
    }
}

/// A call whose database config has `:remote-peer`: the arguments go to the server as data
/// and the server runs the operation.
fn run_remote(op: &Op, sources: Vec<Source>, input_format: Format) -> Result<datahike::Edn, Failure> {
    let mut args = Vec::new();
    for source in sources {
        let edn = match source {
            Source::Argument(text) => match input::remote_form(&text)? {
                Some(edn) => edn,
                None => match input::parse(&text)? {
                    Arg::Data(edn) => edn,
                    Arg::Text { text, .. } => datahike::Edn::Str(text.into()),
                    Arg::Conn(_) | Arg::Db(_) => {
                        return Err(Failure::Invalid(format!(
                            "❌ Invalid arguments for '{}': a call to a :remote-peer server cannot also use a local database ({text})",
                            op.name
                        )))
                    }
                },
            },
            Source::Content { bytes, origin } => read_content(&bytes, &origin, input_format)?,
        };
        args.push(edn);
    }
    log::info(&format!("sending {} to the :remote-peer server", op.api));
    api::call(op, &args, &api::Connections::new()).map_err(Failure::Library)
}

/// The first sentence of a doc string.
pub(crate) fn first_sentence(doc: &str) -> &str {
    doc.find(". ").map_or(doc, |i| &doc[..=i])
}

/// `dthk --help`.
fn usage() -> String {
    let mut out = String::new();
    out.push_str(&format!("▁▃▅▄▇▅▃▅▃▁  datahike cli (datahike-rs {})\n\n", env!("CARGO_PKG_VERSION")));
    out.push_str("This is the Datahike command line interface.\n\n");
    out.push_str("The commands reflect the datahike.api Clojure API.\n");
    out.push_str("Use db:config_file for database values, conn:config_file for connections,\n");
    out.push_str("edn:file, json:file or cbor:file for data; any other argument is read as EDN.\n\n");
    out.push_str("Usage: dthk [options] <command> [arguments]\n\n");
    out.push_str("Options:\n");
    for (flags, doc) in [
        ("-f, --format FORMAT", "Output format for the result: edn (default), json, pprint, cbor."),
        (
            "-if, --input-format FORMAT",
            "Input format of the transaction read from --tx-file or STDIN: edn (default), json, cbor.",
        ),
        ("--tx-file PATH", "Use this input file for transactions instead of command line or STDIN."),
        ("-v", "Verbosity level (repeat for more: -v info, -vv debug, -vvv trace)."),
        ("-h, --help", "Show this help."),
        ("--version", "Show version."),
    ] {
        out.push_str(&format!("  {flags:<28} {doc}\n"));
    }
    out.push_str("\nCommands:\n\n");
    let implemented = |op: &&Op| op.cli && op.run.is_some();
    for category in Category::ORDER {
        let ops: Vec<&Op> = OPS.iter().filter(|op| op.category == category).filter(implemented).collect();
        if ops.is_empty() {
            continue;
        }
        out.push_str(&format!("  {}:\n", category.title()));
        for op in ops {
            out.push_str(&format!("    {:<25} {}\n", format!("{} {}", op.name, op.usage()), first_sentence(op.doc)));
        }
        out.push('\n');
    }
    out.push_str("  Coming in a later version (exit code 2 for now):\n");
    for op in OPS.iter().filter(|op| op.cli && op.run.is_none()) {
        out.push_str(&format!("    {:<25} {}\n", op.name, first_sentence(op.doc)));
    }
    out.push_str("  Server:\n");
    out.push_str(&format!(
        "    {:<25} {}\n",
        "serve SERVER-CONFIG", "Runs Datahike's HTTP server (the single writer, remote peers, live updates)."
    ));
    out.push_str("  Shell:\n");
    out.push_str(&format!(
        "    {:<25} {}\n",
        "completions SHELL", "Prints a completion script for bash, zsh, fish, elvish or powershell."
    ));
    out.push_str("\nTransaction data for transact and load-entities may also come from --tx-file PATH (transact)\n");
    out.push_str("or from standard input, when the argument is '-' or absent.\n");
    out.push_str("Long commands (load-entities, gc-storage, export, import) show progress when standard error is a\n");
    out.push_str("terminal. gc-storage prints a summary; gc-storage --keys prints the deleted keys instead.\n\n");
    out.push_str("For more information on a specific command, use: dthk help <command> (or dthk <command> --help)\n");
    out
}

/// `dthk help <command>`.
fn command_help(name: Option<&str>) -> i32 {
    let Some(name) = name else {
        print!("{}", usage());
        return 0;
    };
    if name == "completions" {
        println!("completions\n\n  Prints a shell completion script for dthk's commands and options.\n\nUsage:\n  dthk completions bash|zsh|fish|elvish|powershell\n\nExample:\n  dthk completions bash > ~/.local/share/bash-completion/completions/dthk");
        return 0;
    }
    if name == "serve" {
        println!("serve (datahike.http.server)\n\n  Runs Datahike's HTTP server until SIGINT or SIGTERM; in-flight requests finish and every\n  connection is flushed before it exits. The config file is an EDN map:\n  {{:port 4444 :host \"127.0.0.1\" :token \"secret\" :level :info :dev-mode false\n   :max-body-bytes 16777216 :query-timeout-ms 60000 :subscription-buffer 10000}}\n\nUsage:\n  dthk serve SERVER-CONFIG\n\nExample:\n  dthk serve server.edn");
        return 0;
    }
    let Some(op) = api::find(name) else {
        eprintln!("Unknown command: {name}\n\nUse 'dthk --help' to see available commands.");
        return EXIT_ERROR;
    };
    println!("{} (datahike.api/{})\n\n  {}\n", op.name, op.api, op.doc);
    if op.run.is_none() {
        println!("  Not implemented yet in this version.");
        return 0;
    }
    println!("Usage:");
    for usage in op.all_usages() {
        println!("  {usage}");
    }
    println!("\nExample:\n  {}", op.example);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command() {
        let help = usage();
        for op in OPS.iter().filter(|op| op.cli) {
            assert!(help.contains(&format!("    {} ", op.name)), "{} missing", op.name);
        }
        assert!(help.contains("    transact conn:CONFIG TX-DATA Applies transaction"), "{help}");
    }
}
