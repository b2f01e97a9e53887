//! The command line grammar, in `clap`: the options (anywhere on the line, as Datahike's
//! `tools.cli` takes them), one subcommand per command of the API description, and `help`,
//! `serve` and `completions`. The commands' arguments stay text: each is read by its prefix
//! (`db:`, `conn:`, `edn:` ...) or as EDN later, against the operation's arities.
//!
//! Datahike's two-letter short option `-if` is no `clap` short option; a pass before `clap`
//! rewrites it to `--input-format`.

use crate::output::Format;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};
use datahike::api::OPS;

/// The options before, between or after the command's arguments.
#[derive(Debug)]
pub struct Options {
    pub format: Format,
    /// Whether `-f` was given: then a failed command also prints its error data, in that format.
    pub format_given: bool,
    pub input_format: Format,
    pub tx_file: Option<String>,
    pub verbosity: u8,
    pub help: bool,
    pub version: bool,
    /// `gc-storage --keys`: print every deleted key rather than the summary.
    pub keys: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    /// No command.
    Nothing,
    /// `dthk help [COMMAND]`.
    Help(Option<String>),
    /// `dthk serve ARGS...` (checked by `serve`).
    Serve(Vec<String>),
    /// `dthk completions SHELL`.
    Completions(clap_complete::Shell),
    /// An API command and its arguments as text.
    Command { name: String, args: Vec<String> },
}

impl Invocation {
    /// For logs: the command and its arguments, secrets redacted.
    pub fn describe(&self) -> String {
        match self {
            Invocation::Nothing => "none".into(),
            Invocation::Help(name) => format!("help {}", name.as_deref().unwrap_or("")),
            Invocation::Serve(args) => format!("serve {args:?}"),
            Invocation::Completions(shell) => format!("completions {shell}"),
            Invocation::Command { name, args } => {
                let shown: Vec<String> = args.iter().map(|a| crate::input::redacted_text(a)).collect();
                format!("{name} {shown:?}")
            }
        }
    }
}

/// Why the command line could not be parsed: the whole message for standard error.
#[derive(Debug)]
pub struct UsageError(pub String);

const FORMATS: [&str; 4] = ["edn", "json", "pprint", "cbor"];

/// The whole grammar; also what shell completions are generated from.
pub fn command() -> Command {
    let format = |name: &'static str| Arg::new(name).value_name("FORMAT").value_parser(FORMATS).global(true);
    let mut cmd = Command::new("dthk")
        .about("Datahike's command line interface (datahike-rs)")
        .disable_help_flag(true)
        .disable_help_subcommand(true)
        .disable_version_flag(true)
        .arg(format("format").short('f').long("format").help("Output format for the result"))
        .arg(format("input-format").long("input-format").help("Input format for the transaction (-if)"))
        .arg(
            Arg::new("tx-file")
                .long("tx-file")
                .value_name("PATH")
                .value_hint(clap::ValueHint::FilePath)
                .global(true)
                .help("Use this input file for transactions instead of command line or STDIN"),
        )
        .arg(Arg::new("verbose").short('v').action(ArgAction::Count).global(true).help("Verbosity (repeat for more)"))
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::SetTrue).global(true).help("Show help"))
        .arg(Arg::new("version").long("version").action(ArgAction::SetTrue).help("Show version"));
    for op in OPS.iter().filter(|op| op.cli) {
        let mut sub = Command::new(op.name)
            .about(crate::first_sentence(op.doc).to_string())
            .long_about(op.doc)
            .override_usage(op.all_usages().join("\n       "))
            .arg(
                Arg::new("args").value_name("ARG").num_args(0..).allow_negative_numbers(true).action(ArgAction::Append),
            );
        if op.name == "gc-storage" {
            sub = sub.arg(
                Arg::new("keys")
                    .long("keys")
                    .action(ArgAction::SetTrue)
                    .help("Print the set of deleted keys (as Datahike returns it) instead of the summary"),
            );
        }
        cmd = cmd.subcommand(sub);
    }
    cmd.subcommand(
        Command::new("help")
            .about("Shows help: the commands, or one command's usage")
            .arg(Arg::new("command").value_parser(command_names())),
    )
    .subcommand(
        Command::new("serve")
            .about("Runs Datahike's HTTP server (the single writer, remote peers, live updates)")
            .arg(Arg::new("args").value_name("SERVER-CONFIG").value_hint(clap::ValueHint::FilePath).num_args(0..)),
    )
    .subcommand(
        Command::new("completions")
            .about("Prints a shell completion script (bash, zsh, fish, elvish, powershell)")
            .arg(
                Arg::new("shell")
                    .value_name("SHELL")
                    .required(true)
                    .value_parser(clap::value_parser!(clap_complete::Shell)),
            ),
    )
}

/// Every command name `help` accepts.
fn command_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = OPS.iter().filter(|op| op.cli).map(|op| op.name).collect();
    names.extend(["serve", "completions", "help"]);
    names
}

/// Datahike's `-if` is `--input-format`.
fn rewrite_two_letter_option(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut rest = false;
    for arg in args {
        if !rest && arg == "-if" {
            out.push("--input-format".to_string());
        } else {
            rest |= arg == "--";
            out.push(arg);
        }
    }
    out
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<String>) -> Result<(Options, Invocation), UsageError> {
    let mut argv = vec!["dthk".to_string()];
    argv.extend(rewrite_two_letter_option(args.clone()));
    let matches = command().try_get_matches_from(argv).map_err(|e| usage_error(&e, &args))?;
    let format = matches.get_one::<String>("format");
    let input_format = matches.get_one::<String>("input-format");
    let mut errors = Vec::new();
    let tx_file = matches.get_one::<String>("tx-file").cloned();
    if let Some(path) = &tx_file {
        if !std::path::Path::new(path).exists() {
            errors.push(format!("Failed to validate \"--tx-file {path}\": Transaction file does not exist."));
        }
    }
    let mut options = Options {
        format: format.and_then(|f| Format::parse(f)).unwrap_or(Format::Edn),
        format_given: format.is_some(),
        input_format: input_format.and_then(|f| Format::parse(f)).unwrap_or(Format::Edn),
        tx_file,
        verbosity: matches.get_count("verbose"),
        help: matches.get_flag("help"),
        version: matches.get_flag("version"),
        keys: false,
    };
    let invocation = match matches.subcommand() {
        None => Invocation::Nothing,
        Some(("help", sub)) => Invocation::Help(sub.get_one::<String>("command").cloned()),
        Some(("serve", sub)) => Invocation::Serve(strings(sub, "args")),
        Some(("completions", sub)) => match sub.get_one::<clap_complete::Shell>("shell") {
            Some(shell) => Invocation::Completions(*shell),
            None => return Err(UsageError("Usage: dthk completions SHELL".into())),
        },
        Some((name, sub)) => {
            // Options given after the command are the command's matches.
            options.help |= sub.get_flag("help");
            options.verbosity = options.verbosity.max(sub.get_count("verbose"));
            options.keys = sub.try_get_one::<bool>("keys").ok().flatten().copied().unwrap_or(false);
            Invocation::Command { name: name.to_string(), args: strings(sub, "args") }
        }
    };
    if !errors.is_empty() {
        return Err(UsageError(format!(
            "The following errors occurred while parsing your command:\n\n{}",
            errors.join("\n")
        )));
    }
    Ok((options, invocation))
}

fn strings(matches: &clap::ArgMatches, id: &str) -> Vec<String> {
    matches.get_many::<String>(id).map(|xs| xs.cloned().collect()).unwrap_or_default()
}

fn context_string(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(xs) => xs.first().cloned(),
        _ => None,
    }
}

/// The command a mistyped name most likely meant: the command whose Datahike API name it is
/// (`q` is `query`, `transact!` is `transact`), or the nearest name by edit distance (swapped
/// letters count once), when near enough.
pub fn nearest_command(name: &str) -> Option<&'static str> {
    let commands = || OPS.iter().filter(|op| op.cli);
    if let Some(op) = commands().find(|op| op.api == name || op.api.trim_end_matches(['!', '?']) == name) {
        return Some(op.name);
    }
    let (distance, best) = commands()
        .map(|op| (edit_distance(name, op.name), op.name))
        .chain([(edit_distance(name, "help"), "help")])
        .min()?;
    (distance <= (name.chars().count() / 3).max(1)).then_some(best)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters cost one each.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// A `clap` error in Datahike's words where Datahike's `dthk` has some, with `clap`'s
/// suggestion of what was meant.
fn usage_error(e: &clap::Error, args: &[String]) -> UsageError {
    let suggestion = |kind: ContextKind| context_string(e, kind).map(|s| format!("\n\n  Did you mean '{s}'?"));
    let options_header = "The following errors occurred while parsing your command:\n\n";
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let name = context_string(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let hint = nearest_command(&name).map(|s| format!("\n\n  Did you mean '{s}'?")).unwrap_or_default();
            // Datahike names the first two words, as it tries two-word commands first.
            let shown = match args.iter().position(|a| *a == name) {
                Some(i) => args[i..args.len().min(i + 2)].join(" "),
                None => name,
            };
            UsageError(format!("Unknown command: {shown}{hint}\n\nUse 'dthk --help' to see available commands."))
        }
        ErrorKind::UnknownArgument => {
            let arg = context_string(e, ContextKind::InvalidArg).unwrap_or_default();
            let hint = suggestion(ContextKind::SuggestedArg).unwrap_or_default();
            UsageError(format!("{options_header}Unknown option: \"{arg}\"{hint}"))
        }
        ErrorKind::InvalidValue => {
            let arg = context_string(e, ContextKind::InvalidArg).unwrap_or_default();
            let value = context_string(e, ContextKind::InvalidValue).unwrap_or_default();
            let name = arg.split_whitespace().next().unwrap_or(&arg).to_string();
            if value.is_empty() {
                return UsageError(format!("{options_header}Missing required argument for \"{arg}\""));
            }
            let choices = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(xs)) => xs.join(", "),
                _ => FORMATS.join(", "),
            };
            UsageError(format!("{options_header}Failed to validate \"{name} {value}\": Must be one of: {choices}"))
        }
        _ => UsageError(e.render().to_string().trim_end().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> (Options, Invocation) {
        parse(args.iter().map(|s| s.to_string()).collect()).unwrap_or_else(|e| panic!("{}", e.0))
    }

    fn error(args: &[&str]) -> String {
        parse(args.iter().map(|s| s.to_string()).collect()).unwrap_err().0
    }

    fn command(name: &str, args: &[&str]) -> Invocation {
        Invocation::Command { name: name.into(), args: args.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn options_anywhere_and_the_two_letter_short_option() {
        let (o, inv) = parsed(&["-f", "json", "datoms", "-if", "cbor", "db:x", "-vv", "-1", "-"]);
        assert_eq!((o.format, o.input_format, o.verbosity), (Format::Json, Format::Cbor, 2));
        assert_eq!(inv, command("datoms", &["db:x", "-1", "-"]));
        let (o, _) = parsed(&["--format=pprint", "-v", "-v", "schema", "db:x"]);
        assert_eq!((o.format, o.verbosity), (Format::Pprint, 2));
        let (_, inv) = parsed(&["transact", "conn:x", "--", "-f"]);
        assert_eq!(inv, command("transact", &["conn:x", "-f"]));
        let (o, inv) = parsed(&["gc-storage", "conn:x", "--keys"]);
        assert!(o.keys);
        assert_eq!(inv, command("gc-storage", &["conn:x"]));
    }

    #[test]
    fn option_errors_in_datahikes_words() {
        assert!(error(&["-f", "xml"]).contains("Must be one of: edn, json, pprint, cbor"));
        assert!(error(&["query", "-f"]).contains("Missing required argument"), "{}", error(&["query", "-f"]));
        assert!(error(&["--tx-file", "/nonexistent/x", "transact"]).contains("does not exist"));
        assert!(error(&["--bogus"]).contains("Unknown option: \"--bogus\""));
        assert!(error(&["--fromat", "json"]).contains("Did you mean '--format'?"));
    }

    #[test]
    fn a_mistyped_command_gets_the_nearest_one() {
        let e = error(&["transcat", "conn:x", "[]"]);
        assert!(e.starts_with("Unknown command: transcat conn:x"), "{e}");
        assert!(e.contains("Did you mean 'transact'?"), "{e}");
        assert!(e.contains("dthk --help"), "{e}");
        // Nothing near: no suggestion.
        assert!(!error(&["frobnicate"]).contains("Did you mean"));
        // Datahike's API names, and small slips.
        for (typed, meant) in [
            ("q", "query"),
            ("transact!", "transact"),
            ("database-exists?", "database-exists"),
            ("pul", "pull"),
            ("datomz", "datoms"),
            ("shcema", "schema"),
            ("gc-storag", "gc-storage"),
        ] {
            assert_eq!(nearest_command(typed), Some(meant), "{typed}");
        }
        assert_eq!(nearest_command("xyzzy"), None);
    }

    #[test]
    fn help_serve_and_completions() {
        assert_eq!(parsed(&["help", "pull"]).1, Invocation::Help(Some("pull".into())));
        let (o, inv) = parsed(&["pull", "--help"]);
        assert!(o.help);
        assert_eq!(inv, command("pull", &[]));
        assert_eq!(parsed(&["serve", "s.edn"]).1, Invocation::Serve(vec!["s.edn".into()]));
        assert_eq!(parsed(&["completions", "bash"]).1, Invocation::Completions(clap_complete::Shell::Bash));
        assert!(error(&["completions", "cmd.exe"]).contains("cmd.exe"));
    }
}
