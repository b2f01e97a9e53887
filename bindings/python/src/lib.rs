//! `datahike._native`: the operations of `datahike::api::OPS` for Python. [`ops`] describes
//! them (the Python package generates its functions from that list at import) and [`call`]
//! runs any of them: the Python arguments become [`Edn`] by the parameter types of the
//! arity they fill (`args.rs`), the operation runs through `api::call` with the GIL
//! released, and the result comes back as Python values, tagged JSON, EDN text or CBOR bytes.
//! One [`Connections`] serves the whole process: every thread shares its connections.

mod args;
mod convert;

use datahike::api::{self, Connections, Op, Param, Returns, OPS};
use datahike::edn::{json, pr_str, read_str};
use datahike::{Edn, Error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};
use std::sync::LazyLock;

/// The connections of this process, one per database, opened on first use.
static CONNECTIONS: LazyLock<Connections> = LazyLock::new(Connections::new);

static EXCEPTION: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `datahike.DatahikeException` carrying the error's message, code and data.
fn exception(py: Python<'_>, error: &Error) -> PyErr {
    let raised = (|| -> PyResult<PyErr> {
        let class = EXCEPTION.import(py, "datahike._errors", "DatahikeException")?;
        let data = convert::to_py(py, &error.data())?;
        Ok(PyErr::from_value(class.call1((error.to_string(), error.code(), data))?))
    })();
    raised.unwrap_or_else(|e| e)
}

/// The output formats: Python values (`cbor`, Datahike's default, and its alias `python`),
/// Datahike's tagged JSON parsed by `json.loads`, EDN text, or the CBOR bytes themselves.
#[derive(Clone, Copy)]
enum Output {
    Python,
    Json,
    Edn,
    CborBytes,
}

impl Output {
    fn parse(text: &str) -> Result<Output, Error> {
        match text {
            "cbor" | "python" => Ok(Output::Python),
            "json" => Ok(Output::Json),
            "edn" => Ok(Output::Edn),
            "cbor-bytes" => Ok(Output::CborBytes),
            other => Err(Error::Argument(
                format!(
                    "output format not supported: {other:?}; expected 'cbor', 'json', 'edn', 'python' or 'cbor-bytes'"
                )
                .into(),
            )),
        }
    }

    /// `edn` in this format. A query's relation (a set of tuples, `relation`) becomes a
    /// list of lists also when it is empty.
    fn write<'py>(self, py: Python<'py>, edn: &Edn, relation: bool) -> PyResult<Bound<'py, PyAny>> {
        if !matches!(self, Output::Edn) && edn.nests_deeper_than(Edn::WRITE_DEPTH_MAX) {
            let message =
                format!("the result nests more than {} levels deep; ask for output_format='edn'", Edn::WRITE_DEPTH_MAX);
            return Err(exception(py, &Error::Argument(message.into())));
        }
        match self {
            Output::Python => match edn {
                Edn::Set(rows) if relation => convert::list(py, rows),
                _ => convert::to_py(py, edn),
            },
            Output::Json => py.import("json")?.call_method1("loads", (json::to_tagged_json(edn),)),
            Output::Edn => Ok(PyString::new(py, &pr_str(edn)).into_any()),
            Output::CborBytes => Ok(PyBytes::new(py, &datahike::cbor::edn_to_cbor(edn)).into_any()),
        }
    }
}

/// What Datahike's binding returns where it differs from the operation's result: `transact`
/// gives the transaction's metadata, `merge-db` the new commit id. `report=True` asks for
/// the whole transaction report instead.
fn binding_result(op: &Op, report: bool, result: Edn) -> Edn {
    if report {
        return result;
    }
    match op.api {
        "transact" => result.get_kw("tx-meta").cloned().unwrap_or(Edn::Nil),
        "merge-db" => match result.get_kw("db-after") {
            Some(Edn::Tagged(_, summary)) => summary.get_kw("commit-id").cloned().unwrap_or(Edn::Nil),
            Some(summary) => summary.get_kw("commit-id").cloned().unwrap_or(Edn::Nil),
            None => Edn::Nil,
        },
        _ => result,
    }
}

/// Runs the operation `name` (its Python name, `dthk` name or `datahike.api` name) on
/// `args`, one per Python parameter that [`ops`] lists for the arity. `input_format` is the
/// format of transaction data text (`json`, `edn`, `cbor`) for operations that take some,
/// else the view of a database argument given as a config (`db`, `history`, `asof:MS`,
/// `since:MS`, `branch:NAME`, `commit:UUID`).
#[pyfunction]
#[pyo3(signature = (name, args, input_format=None, output_format="cbor", report=false))]
fn call<'py>(
    py: Python<'py>,
    name: &str,
    args: Vec<Bound<'py, PyAny>>,
    input_format: Option<&str>,
    output_format: &str,
    report: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let op = args::find(name).ok_or_else(|| {
        exception(py, &Error::Argument(format!("no operation {name:?}; datahike._native.ops() lists them").into()))
    })?;
    let output = Output::parse(output_format).map_err(|e| exception(py, &e))?;
    let slots = args::shape(op, &args, input_format).map_err(|e| match e {
        args::ShapeError::Python(e) => e,
        args::ShapeError::Datahike(e) => exception(py, &e),
    })?;
    let result = py.detach(|| -> Result<Edn, Error> {
        let edn_args = args::resolve(slots, &CONNECTIONS)?;
        api::call(op, &edn_args, &CONNECTIONS)
    });
    match result {
        Ok(edn) => output.write(py, &binding_result(op, report, edn), op.returns == Returns::QueryResult),
        Err(e) => Err(exception(py, &e)),
    }
}

fn returns_name(returns: Returns) -> String {
    format!("{returns:?}")
}

/// The operations, each a dict: `name` (the `dthk` command), `api` (the `datahike.api`
/// function), `python_name`, `doc`, `category`, `returns` (a phrase) and `returns_kind`,
/// `pure`, `arities` (each a list of `{name, kind, doc}`: the Python parameters in order, a
/// rest parameter taking a list), and `excluded`: why the binding offers no function for
/// it, or None.
#[pyfunction]
fn ops(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let items = OPS
        .iter()
        .map(|op| {
            let d = PyDict::new(py);
            d.set_item("name", op.name)?;
            d.set_item("api", op.api)?;
            d.set_item("python_name", args::python_name(op))?;
            d.set_item("doc", op.doc)?;
            d.set_item("category", op.category.title())?;
            d.set_item("returns", op.returns.describe())?;
            d.set_item("returns_kind", returns_name(op.returns))?;
            d.set_item("pure", op.pure)?;
            d.set_item("remote", op.remote)?;
            d.set_item("excluded", args::excluded(op))?;
            let arities = op
                .arities
                .iter()
                .map(|params| {
                    let slots = args::slots(op, params)
                        .into_iter()
                        .map(|(name, param)| {
                            let s = PyDict::new(py);
                            s.set_item("name", name)?;
                            s.set_item("kind", format!("{param:?}"))?;
                            s.set_item("doc", param.expected())?;
                            s.set_item("rest", param.is_rest())?;
                            Ok(s)
                        })
                        .collect::<PyResult<Vec<_>>>()?;
                    PyList::new(py, slots)
                })
                .collect::<PyResult<Vec<_>>>()?;
            d.set_item("arities", PyList::new(py, arities)?)?;
            d.set_item(
                "takes_input_format",
                op.arities.iter().any(|params| {
                    params.first() == Some(&Param::Db)
                        || params.iter().any(|p| matches!(p, Param::TxData | Param::TxVector | Param::Entities))
                }),
            )?;
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// The EDN text of a Python value by Datahike's conversion rules (`mode`: `value`,
/// `pattern` or `query`).
#[pyfunction]
#[pyo3(signature = (value, mode="value"))]
fn to_edn(value: &Bound<'_, PyAny>, mode: &str) -> PyResult<String> {
    let mode = match mode {
        "value" => convert::Mode::Value,
        "pattern" => convert::Mode::Pattern,
        "query" => convert::Mode::Query,
        other => return Err(PyValueError::new_err(format!("mode {other:?}: expected 'value', 'pattern' or 'query'"))),
    };
    Ok(pr_str(&convert::to_edn(value, mode)?))
}

/// The Python value of EDN text, as results come back.
#[pyfunction]
fn from_edn<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let edn = read_str(text).map_err(|e| exception(py, &Error::from(e)))?;
    Output::Python.write(py, &edn, false)
}

/// Releases the connection this process holds to the database of `config` (an EDN string
/// or a dict); the next call opens it again.
#[pyfunction]
fn release(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<()> {
    let config = args::config_of(config).map_err(|e| match e {
        args::ShapeError::Python(e) => e,
        args::ShapeError::Datahike(e) => exception(py, &e),
    })?;
    let result = py.detach(|| datahike::Config::from_edn(&config).and_then(|c| CONNECTIONS.forget(&c)));
    result.map_err(|e| exception(py, &e))
}

/// Releases every connection this process holds (at exit: flushes what they hold).
#[pyfunction]
fn release_all(py: Python<'_>) -> PyResult<()> {
    py.detach(|| CONNECTIONS.release_all()).map_err(|e| exception(py, &e))
}

/// How many connections this process holds.
#[pyfunction]
fn open_connections() -> usize {
    CONNECTIONS.all().len()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(call, m)?)?;
    m.add_function(wrap_pyfunction!(ops, m)?)?;
    m.add_function(wrap_pyfunction!(to_edn, m)?)?;
    m.add_function(wrap_pyfunction!(from_edn, m)?)?;
    m.add_function(wrap_pyfunction!(release, m)?)?;
    m.add_function(wrap_pyfunction!(release_all, m)?)?;
    m.add_function(wrap_pyfunction!(open_connections, m)?)?;
    m.add("STRING_MARKER", convert::STRING_MARKER)?;
    Ok(())
}
