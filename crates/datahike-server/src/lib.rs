//! Datahike's HTTP server over datahike-rs: the single writer of the databases it serves,
//! the endpoint of `:remote-peer` clients and of `:writer {:backend :datahike-server}`
//! clients, and a source of live updates.
//!
//! Routes are generated from the library's API description ([`datahike::api::OPS`]): one
//! route per remotely supported operation, named as Datahike's server names it (`/q`,
//! `/transact`, `/database-exists`...), GET for the pure reads and POST for the rest, the
//! body being the vector of the operation's arguments. The remote writer's routes
//! (`/transact!-writer`, `/create-database-writer`, `/delete-database-writer`) take
//! `[config & arguments]`. Bodies and results are EDN, JSON, transit+json or CBOR, chosen by
//! `Content-Type` and `Accept`. `/swagger.json` describes every route, `/subscribe` streams
//! transaction reports, `/stats` and `/health` serve operations.
//!
//! Requests run on tokio's blocking pool: each is one call of the synchronous library, and
//! concurrent transactions on one database share log syncs through the library's group
//! commit. Shutdown stops accepting, lets requests in flight finish, ends subscriptions and
//! releases (flushes) every connection.

mod config;
mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod openapi;
mod stats;
mod subscribe;

pub use config::ServerConfig;
pub use format::Format;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use datahike::api::{self, json_tx, Connections, Op};
use datahike::edn::{pr_str, read_str};
use datahike::{Edn, Error};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The remote writer's routes and the operations they run.
pub const WRITER_ROUTES: [(&str, &str); 3] = [
    ("/transact!-writer", "transact"),
    ("/create-database-writer", "create-database"),
    ("/delete-database-writer", "delete-database"),
];

/// The state every request shares.
struct Shared {
    config: ServerConfig,
    connections: Connections,
    stats: stats::Stats,
    hubs: Arc<subscribe::Hubs>,
    /// Becomes true when the server shuts down; subscriptions end on it.
    stopping: watch::Receiver<bool>,
}

/// A server that runs on its own threads until [`Running::shutdown`].
pub struct Running {
    /// The address it listens on (the port is the real one when the config said 0).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running {
    /// Stops accepting, waits for requests in flight, ends subscriptions and releases every
    /// connection. Returns the first failure to release.
    pub fn shutdown(mut self) -> Result<(), String> {
        self.stop.send_replace(true);
        self.join()
    }

    /// Waits until the server stops (a signal, or [`Running::shutdown`] from elsewhere).
    pub fn join(&mut self) -> Result<(), String> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| "the server thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        let _ = self.join();
    }
}

/// Binds and starts the server on a runtime of its own. With `on_signal`, SIGINT and SIGTERM
/// shut it down gracefully.
pub fn start(config: ServerConfig, on_signal: bool) -> Result<Running, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("datahike-server")
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    let bind = format!("{}:{}", config.host, config.port);
    let listener =
        runtime.block_on(tokio::net::TcpListener::bind(&bind)).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let (stop, stopping) = watch::channel(false);
    let shared = Arc::new(Shared {
        config,
        connections: Connections::new(),
        stats: stats::Stats::default(),
        hubs: Arc::default(),
        stopping: stopping.clone(),
    });
    let signal_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("datahike-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                if on_signal {
                    tokio::spawn(async move {
                        wait_for_signal().await;
                        tracing::info!(target: "datahike::server", "signal received, shutting down");
                        signal_stop.send_replace(true);
                    });
                }
                let app_state = shared.clone();
                let app = axum::Router::new().fallback(move |req: Request<Body>| handle(app_state.clone(), req));
                let mut until = stopping;
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = until.wait_for(|stop| *stop).await;
                    })
                    .await
                    .map_err(|e| format!("the server failed: {e}"));
                let connections = shared.clone();
                let released = tokio::task::spawn_blocking(move || connections.connections.release_all())
                    .await
                    .map_err(|e| format!("releasing connections failed: {e}"))?
                    .map_err(|e| format!("releasing connections failed: {e}"));
                tracing::info!(target: "datahike::server", "stopped");
                served.and(released)
            })
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;
    tracing::info!(target: "datahike::server", %addr, "listening");
    Ok(Running { addr, stop, thread: Some(thread) })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the server until SIGINT or SIGTERM (`dthk serve`).
pub fn serve(config: ServerConfig) -> Result<(), String> {
    let mut running = start(config, true)?;
    eprintln!("datahike server listening on http://{}", running.addr);
    running.join()
}

/// A finished response with a body in `format`.
fn respond(status: StatusCode, format: Format, body: &Edn) -> Response<Body> {
    let bytes = match format.encode(body) {
        Ok(bytes) => bytes,
        Err(message) => {
            let data = Edn::Map(vec![
                (Edn::kw("error"), Edn::kw("server/not-encodable")),
                (Edn::kw("format"), Edn::str(format.mime())),
            ]);
            return respond(StatusCode::NOT_ACCEPTABLE, Format::Edn, &error_body(&message, data));
        }
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    response
}

/// Datahike's error body, `{:msg "..." :ex-data {:error code ...}}`.
fn error_body(message: &str, data: Edn) -> Edn {
    Edn::Map(vec![(Edn::kw("msg"), Edn::Str(message.into())), (Edn::kw("ex-data"), data)])
}

fn error_data(code: &str) -> Edn {
    Edn::Map(vec![(Edn::kw("error"), Edn::kw(code))])
}

/// The response of a library error, `{:msg .. :ex-data {:error code ...}}`: 400 for bad
/// input, 503 for a query that ran out of the server's time, 500 for faults.
fn error_response(error: &Error, format: Format) -> Response<Body> {
    let status = if error.is_client_error() {
        StatusCode::BAD_REQUEST
    } else if error.code() == "query/timeout" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    respond(status, format, &error_body(&error.to_string(), error.data()))
}

/// Whether the request carries the server's token.
fn authorized(config: &ServerConfig, headers: &HeaderMap) -> bool {
    if config.dev_mode {
        return true;
    }
    let Some(token) = &config.token else { return false };
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = given.strip_prefix("token ").or_else(|| given.strip_prefix("Token ")) else { return false };
    // Compare in time independent of where the first difference is.
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The formats of the request body and of the response.
fn formats(headers: &HeaderMap) -> Result<(Format, Format), String> {
    let request = match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => Format::Edn,
        Some(mime) if mime.starts_with("text/plain") || mime.starts_with("application/x-www-form-urlencoded") => {
            // `curl -d` without a content type: read EDN.
            Format::Edn
        }
        Some(mime) => Format::from_mime(mime).ok_or_else(|| {
            format!(
                "unsupported Content-Type {mime}; use one of {}",
                Format::ALL.iter().map(|f| f.mime()).collect::<Vec<_>>().join(", ")
            )
        })?,
    };
    let response =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).and_then(Format::from_accept).unwrap_or(request);
    Ok((request, response))
}

/// CORS headers for an allowed `Origin`.
fn cors(config: &ServerConfig, headers: &HeaderMap, response: &mut Response<Body>) {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return };
    if !config.allow_origins.iter().any(|o| o == origin || o == "*") {
        return;
    }
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, PUT, POST, DELETE"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Accept, no-return-value, Last-Event-ID"),
    );
}

async fn handle(shared: Arc<Shared>, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let mut response = route(&shared, req).await;
    cors(&shared.config, &headers, &mut response);
    let status = response.status().as_u16();
    // The route and status only: never the token, nor bodies (they may hold secrets).
    tracing::info!(target: "datahike::server", %method, path = %path, status, micros = started.elapsed().as_micros() as u64, "request");
    let known = path == "/swagger.json"
        || path == "/health"
        || path == "/stats"
        || path == "/subscribe"
        || api::find_route(&path).is_some()
        || WRITER_ROUTES.iter().any(|(r, _)| *r == path);
    shared.stats.record(if known { &path } else { "(unknown)" }, status, started.elapsed());
    response
}

async fn route(shared: &Arc<Shared>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (request_format, format) = match formats(req.headers()) {
        Ok(f) => f,
        Err(message) => {
            return respond(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Format::Edn,
                &error_body(&message, error_data("request/format")),
            )
        }
    };
    if req.method() == Method::OPTIONS {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        return response;
    }
    if path == "/health" {
        return respond(StatusCode::OK, format, &Edn::Map(vec![(Edn::kw("status"), Edn::kw("ok"))]));
    }
    if !authorized(&shared.config, req.headers()) {
        return respond(
            StatusCode::UNAUTHORIZED,
            format,
            &error_body(
                "missing or wrong token: send the header `Authorization: token <secret>`",
                error_data("request/unauthorized"),
            ),
        );
    }
    match path.as_str() {
        "/swagger.json" | "/openapi.json" => {
            let mut response = Response::new(Body::from(openapi::document().to_string()));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return response;
        }
        "/stats" => {
            let active = shared.hubs.active.load(std::sync::atomic::Ordering::Relaxed);
            return respond(StatusCode::OK, format, &shared.stats.to_edn(&shared.connections, active));
        }
        "/subscribe" => return subscribe(shared.clone(), req, format).await,
        _ => {}
    }
    let writer = WRITER_ROUTES.iter().find(|(r, _)| *r == path).and_then(|(_, name)| api::find(name));
    let Some(op) = writer.or_else(|| api::find_route(&path)) else {
        return respond(
            StatusCode::NOT_FOUND,
            format,
            &error_body(&format!("no route {path}; GET /swagger.json lists them"), error_data("request/route")),
        );
    };
    let allowed = if op.pure && writer.is_none() { [Method::GET, Method::POST].as_slice() } else { &[Method::POST] };
    if !allowed.contains(req.method()) {
        let mut response = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            format,
            &error_body(
                &format!("{path} takes {}", if op.pure { "GET" } else { "POST" }),
                error_data("request/method"),
            ),
        );
        let allow = if op.pure { "GET, POST" } else { "POST" };
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    let no_return = req.headers().contains_key("no-return-value");
    let is_get = req.method() == Method::GET;
    let body = match read_body(shared, req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let args = match decode_args(request_format, &body) {
        Ok(args) => args,
        Err(message) => {
            return respond(StatusCode::BAD_REQUEST, format, &error_body(&message, error_data("request/body")))
        }
    };
    let json = request_format == Format::Json;
    let args = if json { json_tx::args(args) } else { args };
    let args = bound_query(op, args, shared.config.query_timeout_ms);
    let worker = shared.clone();
    let result = tokio::task::spawn_blocking(move || run(&worker, op, args, json)).await;
    match result {
        Ok(Ok(value)) => {
            if no_return {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::OK;
                return response;
            }
            let mut response = respond(StatusCode::OK, format, &value);
            if let (true, Some(age)) = (is_get, shared.config.cache_max_age) {
                let scope = if shared.config.dev_mode { "public, " } else { "" };
                if let Ok(v) = HeaderValue::from_str(&format!("{scope}max-age={age}")) {
                    response.headers_mut().insert(header::CACHE_CONTROL, v);
                }
            }
            response
        }
        Ok(Err(error)) => error_response(&error, format),
        Err(join) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            format,
            &error_body(&format!("the request's worker failed: {join}"), error_data("internal")),
        ),
    }
}

/// Runs one operation; deleting a database also ends its subscriptions. JSON transaction
/// data is first read against the database's schema (strings to keywords...).
fn run(shared: &Shared, op: &Op, mut args: Vec<Edn>, json: bool) -> Result<Edn, Error> {
    if json && op.name == "transact" && args.len() == 2 {
        let db = shared.connections.db_of(&args[0])?;
        args[1] = json_tx::tx_data(&db, &args[1]);
    }
    let args = &args[..];
    let result = api::call_local(op, args, &shared.connections);
    if op.name == "delete-database" && result.is_ok() {
        if let Some(config) = args.first().and_then(|c| datahike::Config::from_edn(c).ok()) {
            shared.hubs.forget(&config.store_id());
        }
    }
    result
}

/// The body, at most the configured size: larger gets 413.
async fn read_body(shared: &Shared, req: Request<Body>) -> Result<Bytes, Response<Body>> {
    let limit = shared.config.max_body_bytes;
    let too_large = || {
        respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            Format::Edn,
            &error_body(
                &format!("the request body exceeds the server's limit of {limit} bytes"),
                error_data("request/too-large"),
            ),
        )
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| too_large())
}

/// The argument vector of a body; an empty body is no arguments.
fn decode_args(format: Format, body: &[u8]) -> Result<Vec<Edn>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match &mut format.decode(body)? {
        Edn::Vector(args) | Edn::List(args) => Ok(std::mem::take(args)),
        other => Err(format!(
            "the body must be a vector of the operation's arguments, got {}",
            datahike::edn::pr_str_short(&datahike::store::backend::redact(other), 200)
        )),
    }
}

/// The arguments of a query with the server's timeout: the query becomes an arg map whose
/// `:timeout` is the smaller of its own and the server's.
fn bound_query(op: &Op, mut args: Vec<Edn>, limit_ms: u64) -> Vec<Edn> {
    if !matches!(op.name, "query" | "query-stats" | "explain") || args.is_empty() {
        return args;
    }
    let limit = i64::try_from(limit_ms).unwrap_or(i64::MAX);
    let mut query = std::mem::replace(&mut args[0], Edn::Nil);
    args[0] = match &mut query {
        Edn::Map(entries) if entries.iter().any(|(k, _)| *k == Edn::kw("query")) => {
            let own = entries.iter().find(|(k, _)| *k == Edn::kw("timeout")).and_then(|(_, v)| match v {
                Edn::Int(ms) => Some(*ms),
                _ => None,
            });
            entries.retain(|(k, _)| *k != Edn::kw("timeout"));
            entries.push((Edn::kw("timeout"), Edn::Int(own.map_or(limit, |own| own.min(limit)))));
            Edn::Map(std::mem::take(entries))
        }
        Edn::Str(text) => match read_str(text) {
            Ok(parsed) => {
                return bound_query(op, std::iter::once(parsed).chain(args.into_iter().skip(1)).collect(), limit_ms)
            }
            Err(_) => query,
        },
        _ => Edn::Map(vec![(Edn::kw("query"), query), (Edn::kw("timeout"), Edn::Int(limit))]),
    };
    args
}

async fn subscribe(shared: Arc<Shared>, req: Request<Body>, _format: Format) -> Response<Body> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use axum::response::IntoResponse;
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
        })
        .unwrap_or_default();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let bad = |message: String| {
        respond(StatusCode::BAD_REQUEST, Format::Edn, &error_body(&message, error_data("request/subscribe")))
    };
    let Some(config_text) = param("config") else {
        return bad("GET /subscribe needs ?config=<the database's config map as EDN>".into());
    };
    let event_format = match param("format").as_deref() {
        None | Some("edn") => Format::Edn,
        Some("json") => Format::Json,
        Some(other) => return bad(format!("format={other}: events are edn or json")),
    };
    let since =
        param("since").or_else(|| req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string));
    let since = match since.map(|s| s.parse::<i64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return bad("since (or Last-Event-ID) must be a transaction id".into()),
    };
    let config = match read_str(&config_text) {
        Ok(c) => c,
        Err(e) => return bad(format!("config is not valid EDN: {e}")),
    };
    let resolver = shared.clone();
    let conn = match tokio::task::spawn_blocking(move || resolver.connections.conn_of(&config)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return error_response(&e, Format::Edn),
        Err(e) => return bad(format!("connecting failed: {e}")),
    };
    let hub = shared.hubs.hub(&conn, shared.config.subscription_buffer);
    let start = since.unwrap_or_else(|| hub.newest());
    let active = shared.hubs.enter();
    let state = (hub.clone(), hub.watch(), start, shared.stopping.clone(), active, false);
    let stream = futures::stream::unfold(state, move |(hub, mut changes, last, mut stopping, active, done)| {
        let conn = conn.clone();
        async move {
            if done || *stopping.borrow() {
                return None;
            }
            loop {
                match hub.after(last) {
                    subscribe::Next::Gone { oldest } => {
                        // Older than the buffer: rebuild those reports from the history.
                        let conn = conn.clone();
                        let rebuilt =
                            tokio::task::spawn_blocking(move || subscribe::backfill(&conn.db(), last, oldest)).await;
                        match rebuilt {
                            Ok(Ok(reports)) => {
                                let events = reports
                                    .iter()
                                    .map(|(tx, report)| Ok(tx_event(event_format, *tx, report)))
                                    .collect();
                                return Some((events, (hub, changes, oldest, stopping, active, false)));
                            }
                            Ok(Err(e)) => {
                                let message = format!(
                                "the reports after transaction {last} are no longer buffered and cannot be rebuilt ({e}); resume from {oldest} or later"
                            );
                                let data = pr_str(&error_body(&message, error_data("subscribe/too-old")));
                                let event = Event::default().event("error").data(data);
                                return Some((
                                    vec![Ok::<Event, std::convert::Infallible>(event)],
                                    (hub, changes, last, stopping, active, true),
                                ));
                            }
                            Err(_) => return None,
                        }
                    }
                    subscribe::Next::Reports(reports) if !reports.is_empty() => {
                        let newest = reports.last().map_or(last, |(tx, _)| *tx);
                        let events =
                            reports.iter().map(|(tx, report)| Ok(tx_event(event_format, *tx, report))).collect();
                        return Some((events, (hub, changes, newest, stopping, active, false)));
                    }
                    subscribe::Next::Reports(_) => {}
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return None },
                    _ = stopping.wait_for(|s| *s) => return None,
                }
            }
        }
    });
    let events = futures::StreamExt::flat_map(stream, futures::stream::iter);
    fn tx_event(format: Format, tx: i64, report: &Edn) -> axum::response::sse::Event {
        // A report's values nest at most as deep as a transaction's (see `value`), far
        // below the writers' limit; should one not encode, it goes as EDN.
        let bytes = format.encode(report).unwrap_or_else(|_| pr_str(report).into_bytes());
        let data = String::from_utf8_lossy(&bytes).into_owned();
        axum::response::sse::Event::default().event("tx-report").id(tx.to_string()).data(data)
    }
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// `%XX` and `+` decoding of a query parameter.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
