//! The implementations of the operations. They run only on arguments that fit an arity, so
//! a mismatch here is a bug in the table, reported as an internal error rather than a panic.

use super::{index_of, Arg, Context};
use crate::{Config, Db, Detail, Edn, Error, IndexOrder, QueryInput, Result, TimePoint, TxReport};

fn bug(what: &str) -> Error {
    Error::Internal(format!("dthk dispatched an argument that is not {what}"))
}

fn data(args: &[Arg], i: usize) -> Result<&Edn> {
    match args.get(i) {
        Some(Arg::Data(d)) => Ok(d),
        _ => Err(bug("data")),
    }
}

fn conn_arg(args: &[Arg]) -> Result<&crate::Conn> {
    match args.first() {
        Some(Arg::Conn(c)) => Ok(c),
        _ => Err(bug("a connection")),
    }
}

fn db_arg(args: &[Arg]) -> Result<&crate::Db> {
    match args.first() {
        Some(Arg::Db(d)) => Ok(d),
        _ => Err(bug("a database")),
    }
}

fn config(args: &[Arg]) -> Result<Config> {
    match args.first() {
        None => Ok(Config::default()),
        Some(_) => Config::from_edn(data(args, 0)?),
    }
}

pub(super) fn database_exists(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(Edn::Bool(crate::database_exists(&config(args)?)?))
}

pub(super) fn create_database(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(crate::create_database(&config(args)?)?.to_edn())
}

pub(super) fn delete_database(args: &[Arg], _: &Context) -> Result<Edn> {
    crate::delete_database(&config(args)?)?;
    Ok(Edn::Nil)
}

pub(super) fn transact(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(conn_arg(args)?.transact_arg(data(args, 1)?)?.to_edn())
}

pub(super) fn load_entities(args: &[Arg], context: &Context) -> Result<Edn> {
    let reports = conn_arg(args)?.load_entities_with_progress(data(args, 1)?, context.progress)?;
    Ok(combine(&reports).map_or(Edn::Nil, |r| r.to_edn()))
}

/// One report for a bulk load that ran as several transactions, as Datahike's one: the first
/// db-before, the last db-after, every datom and tempid, the last metadata.
fn combine(reports: &[TxReport]) -> Option<TxReport> {
    let (first, last) = (reports.first()?, reports.last()?);
    Some(TxReport {
        db_before: first.db_before.clone(),
        db_after: last.db_after.clone(),
        tx_data: reports.iter().flat_map(|r| r.tx_data.iter().cloned()).collect(),
        tempids: reports
            .iter()
            .flat_map(|r| r.tempids.iter().cloned())
            .filter(|(k, _)| *k != Edn::kw("db/current-tx"))
            .chain(last.tempids.iter().filter(|(k, _)| *k == Edn::kw("db/current-tx")).cloned())
            .collect(),
        tx_meta: last.tx_meta.clone(),
    })
}

pub(super) fn with(args: &[Arg], _: &Context) -> Result<Edn> {
    let db = db_arg(args)?;
    let tx = data(args, 1)?;
    let report = match (args.get(2), tx) {
        (Some(_), _) => db.with_meta(tx, Some(data(args, 2)?))?,
        (None, Edn::Map(_)) => {
            let tx_data = tx.get_kw("tx-data").ok_or_else(|| bug("a map with :tx-data"))?;
            db.with_meta(tx_data, tx.get_kw("tx-meta"))?
        }
        (None, _) => db.with(tx)?,
    };
    Ok(report.to_edn())
}

/// The index and components of `(datoms db :eavt c...)` or `(datoms db {:index .. :components [..]})`.
fn index_args(args: &[Arg]) -> Result<(IndexOrder, Vec<Edn>)> {
    let first = data(args, 1)?;
    if let Some(order) = index_of(first) {
        let components = (2..args.len()).map(|i| data(args, i).cloned()).collect::<Result<_>>()?;
        return Ok((order, components));
    }
    let order = first.get_kw("index").and_then(index_of).ok_or_else(|| bug("an index map"))?;
    let components = first.get_kw("components").and_then(Edn::as_seq).map(<[Edn]>::to_vec).unwrap_or_default();
    Ok((order, components))
}

fn datoms_edn(db: &Db, datoms: Vec<crate::Datom>) -> Edn {
    Edn::Vector(datoms.iter().map(|d| db.datom_tagged_edn(d)).collect())
}

pub(super) fn datoms(args: &[Arg], _: &Context) -> Result<Edn> {
    let (order, components) = index_args(args)?;
    let db = db_arg(args)?;
    Ok(datoms_edn(db, db.datoms(order, &components)?))
}

pub(super) fn seek_datoms(args: &[Arg], _: &Context) -> Result<Edn> {
    let (order, components) = index_args(args)?;
    let db = db_arg(args)?;
    Ok(datoms_edn(db, db.seek_datoms(order, &components)?))
}

pub(super) fn rseek_datoms(args: &[Arg], _: &Context) -> Result<Edn> {
    let (order, components) = index_args(args)?;
    let db = db_arg(args)?;
    Ok(datoms_edn(db, db.rseek_datoms(order, &components)?))
}

pub(super) fn index_range(args: &[Arg], _: &Context) -> Result<Edn> {
    let range = data(args, 1)?;
    let start = range.get_kw("start").unwrap_or(Edn::NIL);
    let end = range.get_kw("end").unwrap_or(Edn::NIL);
    let db = db_arg(args)?;
    let attr = range.get_kw("attrid").and_then(|a| db.attr_of(a)).ok_or_else(|| bug("a range map"))?;
    Ok(datoms_edn(db, db.index_range(attr, start, end)?))
}

/// The inputs after a query: databases and data.
fn query_inputs(args: &[Arg]) -> Result<Vec<QueryInput>> {
    args.iter()
        .skip(1)
        .map(|arg| match arg {
            Arg::Db(db) => Ok(QueryInput::Db(db.clone())),
            Arg::Data(data) => Ok(QueryInput::Edn(data.clone())),
            _ => Err(bug("a query input")),
        })
        .collect()
}

pub(super) fn query(args: &[Arg], _: &Context) -> Result<Edn> {
    crate::q(data(args, 0)?, &query_inputs(args)?)
}

pub(super) fn query_stats(args: &[Arg], _: &Context) -> Result<Edn> {
    crate::query::query_stats(data(args, 0)?, &query_inputs(args)?)
}

/// The plan as a string; printed as plain text in the EDN formats.
pub(super) fn explain(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(Edn::Str(crate::query::explain(data(args, 0)?, &query_inputs(args)?)?.into()))
}

pub(super) fn pull(args: &[Arg], _: &Context) -> Result<Edn> {
    let db = db_arg(args)?;
    if args.len() == 2 {
        let options = data(args, 1)?;
        let selector = options.get_kw("selector").ok_or_else(|| bug("a map with :selector"))?;
        let eid = options.get_kw("eid").ok_or_else(|| bug("a map with :eid"))?;
        return crate::pull(db, selector, eid);
    }
    crate::pull(db, data(args, 1)?, data(args, 2)?)
}

pub(super) fn pull_many(args: &[Arg], _: &Context) -> Result<Edn> {
    crate::pull_many(db_arg(args)?, data(args, 1)?, data(args, 2)?)
}

pub(super) fn entity(args: &[Arg], _: &Context) -> Result<Edn> {
    // Text that is no EDN names no entity, as any other value that is no entity id.
    let Some(Arg::Data(eid)) = args.get(1) else { return Ok(Edn::Nil) };
    match crate::entity(db_arg(args)?, eid)? {
        Some(entity) => entity.touch(),
        None => Ok(Edn::Nil),
    }
}

pub(super) fn schema(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.schema_edn())
}

pub(super) fn reverse_schema(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.reverse_schema_edn())
}

pub(super) fn metrics(args: &[Arg], _: &Context) -> Result<Edn> {
    db_arg(args)?.metrics()
}

/// The connection of a `conn:` argument, or a writing connection to the database of a `db:`
/// argument (which `db:` opened read-only).
fn conn_of(args: &[Arg]) -> Result<crate::Conn> {
    match args.first() {
        Some(Arg::Conn(c)) => Ok(c.clone()),
        Some(Arg::Db(d)) => crate::connect(&Config { read_only: false, ..d.config().clone() }),
        _ => Err(bug("a connection or a database")),
    }
}

fn keyword(args: &[Arg], i: usize) -> Result<crate::Keyword> {
    data(args, i)?.as_keyword().ok_or_else(|| bug("a keyword"))
}

fn parents(args: &[Arg], i: usize) -> Result<Vec<BranchOrCommitArg>> {
    let items = match data(args, i)? {
        Edn::Set(xs) | Edn::Vector(xs) | Edn::List(xs) => xs,
        _ => return Err(bug("a set of parents")),
    };
    items.iter().map(BranchOrCommitArg::from_edn).collect()
}

use crate::BranchOrCommit as BranchOrCommitArg;

pub(super) fn branches(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(Edn::Set(conn_arg(args)?.branches()?.into_iter().map(Edn::Keyword).collect()))
}

pub(super) fn branch(args: &[Arg], _: &Context) -> Result<Edn> {
    let from = BranchOrCommitArg::from_edn(data(args, 1)?)?;
    conn_arg(args)?.branch(&from, keyword(args, 2)?)?;
    Ok(Edn::Nil)
}

pub(super) fn delete_branch(args: &[Arg], _: &Context) -> Result<Edn> {
    conn_arg(args)?.delete_branch(keyword(args, 1)?)?;
    Ok(Edn::Nil)
}

pub(super) fn force_branch(args: &[Arg], _: &Context) -> Result<Edn> {
    let conn = conn_of(args)?;
    let result = conn.force_branch(db_arg(args)?, keyword(args, 1)?, &parents(args, 2)?);
    conn.release()?;
    result?;
    Ok(Edn::Nil)
}

pub(super) fn merge_db(args: &[Arg], _: &Context) -> Result<Edn> {
    let meta = if args.len() > 3 { Some(data(args, 3)?) } else { None };
    Ok(conn_arg(args)?.merge_db(&parents(args, 1)?, data(args, 2)?, meta)?.to_edn())
}

pub(super) fn commit_id(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.commit_id().map_or(Edn::Nil, Edn::Uuid))
}

pub(super) fn parent_commit_ids(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.parent_commit_ids().map_or(Edn::Nil, |ps| Edn::Set(ps.into_iter().map(Edn::Uuid).collect())))
}

fn with_conn_of(args: &[Arg], f: impl FnOnce(&crate::Conn) -> Result<Option<crate::Db>>) -> Result<Edn> {
    let conn = conn_of(args)?;
    let result = f(&conn);
    if matches!(args.first(), Some(Arg::Db(_))) {
        conn.release()?;
    }
    Ok(result?.map_or(Edn::Nil, |db| db.to_edn_summary()))
}

pub(super) fn commit_as_db(args: &[Arg], _: &Context) -> Result<Edn> {
    let Edn::Uuid(id) = data(args, 1)? else { return Err(bug("a commit id")) };
    let id = *id;
    with_conn_of(args, |c| c.commit_as_db(id))
}

pub(super) fn branch_as_db(args: &[Arg], _: &Context) -> Result<Edn> {
    let branch = keyword(args, 1)?;
    with_conn_of(args, |c| c.branch_as_db(branch))
}

pub(super) fn gc_storage(args: &[Arg], _: &Context) -> Result<Edn> {
    let remove_before = match args.get(1) {
        None => None,
        Some(_) => match data(args, 1)? {
            Edn::Inst(ms) | Edn::Int(ms) => Some(*ms),
            _ => return Err(bug("an instant")),
        },
    };
    let report = conn_arg(args)?.gc_storage(remove_before)?;
    Ok(Edn::Set(report.deleted.into_iter().map(|k| Edn::Str(k.into())).collect()))
}

/// The path of a `Path` argument: the text as given.
fn path(args: &[Arg], i: usize) -> Result<std::path::PathBuf> {
    Ok(std::path::PathBuf::from(match args.get(i) {
        Some(Arg::Text { text, .. }) => text.clone(),
        Some(Arg::Data(Edn::Str(s))) => s.to_string(),
        Some(Arg::Data(Edn::Symbol(s))) => s.as_str().to_string(),
        Some(Arg::Data(other)) => crate::edn::pr_str(other),
        _ => return Err(bug("a path")),
    }))
}

/// The options map of argument `i`, if given.
fn options(args: &[Arg], i: usize) -> Result<Option<&Edn>> {
    args.get(i).map(|_| data(args, i)).transpose()
}

fn option_bool(options: Option<&Edn>, key: &str) -> Result<Option<bool>> {
    match options.and_then(|o| o.get_kw(key)) {
        None | Some(Edn::Nil) => Ok(None),
        Some(Edn::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(Error::Argument(Detail::new(format!(":{key} must be true or false, got {other}")).value(other.clone())))
        }
    }
}

pub(super) fn export(args: &[Arg], context: &Context) -> Result<Edn> {
    use crate::migrate::{Compression, ExportOptions};
    let db = db_arg(args)?;
    let target = path(args, 1)?;
    let options = options(args, 2)?;
    let mut opts = ExportOptions { history: option_bool(options, "history?")?, ..ExportOptions::default() };
    match options.and_then(|o| o.get_kw("compression")) {
        None => {}
        Some(Edn::Keyword(k)) if k.as_str() == "gzip" => opts.compression = Compression::Gzip,
        Some(Edn::Keyword(k)) if k.as_str() == "none" => opts.compression = Compression::None,
        Some(other) => {
            let message = format!(":compression must be :gzip or :none, got {other}");
            return Err(Error::Argument(Detail::new(message).value(other.clone())));
        }
    }
    match options.and_then(|o| o.get_kw("chunk-size")) {
        None => {}
        Some(Edn::Int(n)) if *n > 0 => opts.chunk_size = usize::try_from(*n).unwrap_or(usize::MAX),
        Some(other) => {
            let message = format!(":chunk-size must be a positive integer, got {other}");
            return Err(Error::Argument(Detail::new(message).value(other.clone())));
        }
    }
    opts.progress = context.progress;
    Ok(crate::migrate::export_db(db, &target, &opts)?.to_edn())
}

pub(super) fn import(args: &[Arg], context: &Context) -> Result<Edn> {
    use crate::migrate::ImportOptions;
    let conn = conn_arg(args)?;
    let source = path(args, 1)?;
    let options = options(args, 2)?;
    let opts = ImportOptions {
        merge: option_bool(options, "merge?")?.unwrap_or(false),
        progress: context.progress,
        ..ImportOptions::default()
    };
    Ok(crate::migrate::import_db(conn, &source, &opts)?.to_edn())
}

pub(super) fn connect(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(conn_arg(args)?.handle())
}

pub(super) fn db(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(conn_arg(args)?.db().to_edn_handle())
}

pub(super) fn release(args: &[Arg], _: &Context) -> Result<Edn> {
    conn_arg(args)?;
    Ok(Edn::Nil)
}

pub(super) fn history(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.history()?.to_edn_handle())
}

/// The time point of argument `i`: a transaction id, or an instant (epoch milliseconds).
fn time_point(args: &[Arg], i: usize) -> Result<TimePoint> {
    TimePoint::from_edn(data(args, i)?).ok_or_else(|| bug("a time point"))
}

pub(super) fn as_of(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.as_of(time_point(args, 1)?)?.to_edn_handle())
}

pub(super) fn since(args: &[Arg], _: &Context) -> Result<Edn> {
    Ok(db_arg(args)?.since(time_point(args, 1)?)?.to_edn_handle())
}
