//! Functions and aggregates written in Rust. Datahike resolves a namespace-qualified symbol in
//! a query to the var it names; here [`register_function`] and [`register_aggregate`] give
//! such names to Rust closures, process-wide. Closures can also be passed as query inputs
//! (`QueryInput::Function`, `QueryInput::Aggregate`) and called through their `:in` variable.

use super::QueryError;
use crate::edn::{Edn, Symbol};
use crate::error::{Detail, Error, Result};
use crate::value::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// What a custom function returns: a value, or an error that fails the query with a
/// `query/eval` error naming the function.
pub type FnResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A function of `:where` clauses: `[(my.ns/f ?x ?y) ?out]` or the predicate `[(my.ns/f ?x)]`
/// (which holds when the result is neither `nil` nor `false`). It gets the argument values.
pub type QueryFn = Arc<dyn Fn(&[Value]) -> FnResult<Value> + Send + Sync>;

/// An aggregate of `:find`: `(my.ns/agg ?x)` or `(my.ns/agg 3 ?x)`. It gets the constant
/// arguments before the variable (none for `(my.ns/agg ?x)`) and the values of `?x` in one
/// group (with duplicates when `:with` asks for them), and returns the result element.
pub type AggregateFn = Arc<dyn Fn(&[Value], &[Value]) -> FnResult<Edn> + Send + Sync>;

fn functions() -> &'static RwLock<HashMap<Symbol, QueryFn>> {
    static FUNCTIONS: OnceLock<RwLock<HashMap<Symbol, QueryFn>>> = OnceLock::new();
    FUNCTIONS.get_or_init(RwLock::default)
}

fn aggregates() -> &'static RwLock<HashMap<Symbol, AggregateFn>> {
    static AGGREGATES: OnceLock<RwLock<HashMap<Symbol, AggregateFn>>> = OnceLock::new();
    AGGREGATES.get_or_init(RwLock::default)
}

/// The symbol of a registered name, which must be namespace-qualified: a plain name would
/// never be looked up, as in Datahike, where only qualified symbols resolve to vars.
fn qualified(name: &str, what: &str) -> Result<Symbol> {
    let symbol = Symbol::new(name);
    match symbol.namespace() {
        Some(ns) if !ns.is_empty() && !symbol.name().is_empty() => Ok(symbol),
        _ => {
            let message =
                format!("A custom {what} needs a namespace-qualified name such as my.ns/{name}, got {name:?}");
            Err(Error::Query(QueryError::Syntax(Detail::new(message).with("function", Edn::Symbol(symbol)))))
        }
    }
}

/// Makes `f` callable in `:where` clauses as the namespace-qualified symbol `name`, e.g.
/// `my.ns/double`, in every query of this process. Registering a name again replaces the
/// function. Built-in functions (`clojure.string/...` included) keep their names.
pub fn register_function<F>(name: &str, f: F) -> Result<()>
where
    F: Fn(&[Value]) -> FnResult<Value> + Send + Sync + 'static,
{
    let symbol = qualified(name, "function")?;
    functions().write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(symbol, Arc::new(f));
    Ok(())
}

/// Makes `f` usable as an aggregate in `:find` as the namespace-qualified symbol `name`, e.g.
/// `(my.ns/mode ?x)`, in every query of this process. Registering a name again replaces it.
pub fn register_aggregate<F>(name: &str, f: F) -> Result<()>
where
    F: Fn(&[Value], &[Value]) -> FnResult<Edn> + Send + Sync + 'static,
{
    let symbol = qualified(name, "aggregate")?;
    aggregates().write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(symbol, Arc::new(f));
    Ok(())
}

/// The registered function `name`.
pub(crate) fn function(name: Symbol) -> Option<QueryFn> {
    functions().read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&name).cloned()
}

/// The registered aggregate `name`.
pub(crate) fn aggregate(name: Symbol) -> Option<AggregateFn> {
    aggregates().read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&name).cloned()
}
