//! The real server on loopback, driven over HTTP: authentication, every format, routes and
//! methods, bad and oversized bodies, errors as data, the query timeout, handles, live
//! updates across a disconnect and a restart, and shutdown that loses nothing acknowledged.

use datahike::edn::{pr_str, read_str};
use datahike::Edn;
use datahike_server::{start, Running, ServerConfig};
use std::io::{BufRead, BufReader};
use std::time::Duration;

const TOKEN: &str = "s3cret-token";

fn server(extra: &str) -> Running {
    let config = ServerConfig::parse(&format!("{{:port 0 :token \"{TOKEN}\" {extra}}}")).unwrap();
    start(config, false).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn edn(&self) -> Edn {
        read_str(std::str::from_utf8(&self.body).unwrap()).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `:error` code of an error body.
    fn code(&self) -> String {
        let body = self.edn();
        body.get_kw("ex-data").and_then(|d| d.get_kw("error")).map(pr_str).unwrap_or_default()
    }
}

/// A request; `token` None sends no Authorization header.
fn request(s: &Running, method: &str, route: &str, mime: &str, body: &[u8], token: Option<&str>) -> Reply {
    let url = format!("http://{}{route}", s.addr);
    let agent = agent();
    let auth = token.map(|t| format!("token {t}"));
    let mut response = match method {
        "GET" => {
            let mut r = agent.get(&url).header("Content-Type", mime).header("Accept", mime);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.force_send_body().send(body).unwrap()
        }
        _ => {
            let mut r = agent.post(&url).header("Content-Type", mime).header("Accept", mime);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(body).unwrap()
        }
    };
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    Reply { status, content_type, body }
}

fn edn_call(s: &Running, method: &str, route: &str, args: &str) -> Reply {
    request(s, method, route, "application/edn", args.as_bytes(), Some(TOKEN))
}

fn db_config(dir: &tempfile::TempDir) -> String {
    format!(
        "{{:store {{:backend :file :path {:?}}} :schema-flexibility :read}}",
        dir.path().join("db").display().to_string()
    )
}

#[test]
fn token_is_required_on_every_route_but_health() {
    let s = server("");
    for (method, route) in
        [("POST", "/q"), ("POST", "/transact"), ("GET", "/swagger.json"), ("GET", "/stats"), ("POST", "/nope")]
    {
        let none = request(&s, method, route, "application/edn", b"[]", None);
        assert_eq!(none.status, 401, "{route} without a token");
        assert_eq!(none.code(), ":request/unauthorized");
        let wrong = request(&s, method, route, "application/edn", b"[]", Some("s3cret-tokeN"));
        assert_eq!(wrong.status, 401, "{route} with a wrong token");
        assert!(!wrong.text().contains(TOKEN), "the token is never echoed");
    }
    assert_eq!(request(&s, "GET", "/health", "application/edn", b"", None).status, 200);
    let dev = start(ServerConfig::parse("{:port 0 :dev-mode true}").unwrap(), false).unwrap();
    assert_eq!(
        request(&dev, "POST", "/database-exists", "application/edn", b"[{:store {:backend :memory :id \"x\"}}]", None)
            .edn(),
        Edn::Bool(false)
    );
}

#[test]
fn datahike_routes_in_edn() {
    let s = server("");
    let dir = tempfile::tempdir().unwrap();
    let cfg = db_config(&dir);
    assert_eq!(edn_call(&s, "POST", "/database-exists", &format!("[{cfg}]")).edn(), Edn::Bool(false));
    let created = edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.content_type, "application/edn");
    let report =
        edn_call(&s, "POST", "/transact", &format!("[{cfg} [{{:name \"Ada\" :age 36}} {{:name \"Bob\" :age 25}}]]"));
    assert_eq!(report.status, 200, "{}", report.text());
    assert_eq!(report.edn().get_kw("tx-data").and_then(Edn::as_seq).map(<[Edn]>::len), Some(5));
    let q = edn_call(&s, "GET", "/q", &format!("[\"[:find ?n :where [?e :name ?n]]\" {cfg}]"));
    assert_eq!(q.edn(), read_str(r#"#{["Ada"] ["Bob"]}"#).unwrap());
    // The map form of a query, inputs, and POST on a pure route (curl -d) also work.
    let q = edn_call(
        &s,
        "POST",
        "/q",
        &format!("[{{:query [:find ?n . :in $ ?a :where [?e :age ?a] [?e :name ?n]]}} {cfg} 25]"),
    );
    assert_eq!(q.edn(), Edn::str("Bob"));
    assert_eq!(
        edn_call(&s, "GET", "/pull", &format!("[{cfg} [:name] 1]")).edn(),
        read_str(r#"{:name "Ada"}"#).unwrap()
    );
    assert_eq!(
        edn_call(&s, "GET", "/pull-many", &format!("[{cfg} [:age] [1 2]]")).edn(),
        read_str("[{:age 36} {:age 25}]").unwrap()
    );
    let datoms = edn_call(&s, "GET", "/datoms", &format!("[{cfg} :eavt 2]")).edn();
    assert_eq!(datoms.as_seq().map(<[Edn]>::len), Some(2));
    let schema = edn_call(&s, "GET", "/schema", &format!("[{cfg}]"));
    assert_eq!((schema.status, schema.edn()), (200, Edn::Map(vec![])));
    // A database handle from /db names the same value later, also as a history handle.
    let handle = edn_call(&s, "POST", "/db", &format!("[{cfg}]")).edn();
    assert!(pr_str(&handle).starts_with("#datahike/DB {:store-id [[:file "), "{}", pr_str(&handle));
    let by_handle = edn_call(&s, "GET", "/q", &format!("[[:find (count ?e) . :where [?e :name]] {}]", pr_str(&handle)));
    assert_eq!(by_handle.edn(), Edn::Int(2));
    edn_call(&s, "POST", "/transact", &format!("[{cfg} [[:db/retract 2 :age 25]]]"));
    // The history of the current value has the assertion and the retraction; the history of
    // the old handle's value only the assertion.
    for (db, count) in [(cfg.clone(), 2), (pr_str(&handle), 1)] {
        let history = edn_call(&s, "GET", "/history", &format!("[{db}]")).edn();
        assert!(pr_str(&history).starts_with("#datahike/HistoricalDB {:origin #datahike/DB"), "{}", pr_str(&history));
        let datoms = edn_call(&s, "GET", "/datoms", &format!("[{} :eavt 2 :age]", pr_str(&history))).edn();
        assert_eq!(datoms.as_seq().map(<[Edn]>::len), Some(count), "{}", pr_str(&datoms));
    }
    // The old handle still reads its commit.
    assert_eq!(
        edn_call(&s, "GET", "/q", &format!("[[:find ?a . :where [2 :age ?a]] {}]", pr_str(&handle))).edn(),
        Edn::Int(25)
    );
    assert_eq!(edn_call(&s, "GET", "/q", &format!("[[:find ?a . :where [2 :age ?a]] {cfg}]")).edn(), Edn::Nil);
    // no-return-value: an empty body.
    let url = format!("http://{}/transact", s.addr);
    let mut r = agent()
        .post(&url)
        .header("Authorization", &format!("token {TOKEN}"))
        .header("Content-Type", "application/edn")
        .header("no-return-value", "true")
        .send(format!("[{cfg} [{{:name \"Cy\"}}]]").as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.body_mut().read_to_vec().unwrap().is_empty());
    assert_eq!(edn_call(&s, "POST", "/delete-database", &format!("[{cfg}]")).status, 200);
    assert_eq!(edn_call(&s, "POST", "/database-exists", &format!("[{cfg}]")).edn(), Edn::Bool(false));
}

#[test]
fn methods_routes_and_bad_bodies() {
    let s = server(":max-body-bytes 4096");
    let dir = tempfile::tempdir().unwrap();
    let cfg = db_config(&dir);
    edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    let get_transact = edn_call(&s, "GET", "/transact", &format!("[{cfg} []]"));
    assert_eq!((get_transact.status, get_transact.code()), (405, ":request/method".to_string()));
    assert_eq!(edn_call(&s, "POST", "/no-such-op", "[]").status, 404);
    assert_eq!(edn_call(&s, "POST", "/export", "[]").status, 404, "export is not remote");
    let malformed = edn_call(&s, "POST", "/transact", "[{:store");
    assert_eq!((malformed.status, malformed.code()), (400, ":request/body".to_string()));
    assert!(malformed.edn().get_kw("msg").map(pr_str).unwrap().contains("not valid EDN"));
    let not_vector = edn_call(&s, "POST", "/transact", "{:a 1}");
    assert_eq!(not_vector.status, 400);
    assert!(not_vector.text().contains("must be a vector"));
    let arity = edn_call(&s, "GET", "/pull", &format!("[{cfg}]"));
    assert_eq!((arity.status, arity.code()), (400, ":argument/invalid".to_string()), "{}", arity.text());
    let big = format!("[{cfg} [{{:name \"{}\"}}]]", "x".repeat(8000));
    let too_large = edn_call(&s, "POST", "/transact", &big);
    assert_eq!((too_large.status, too_large.code()), (413, ":request/too-large".to_string()));
    let wrong_type = request(&s, "POST", "/q", "application/xml", b"<q/>", Some(TOKEN));
    assert_eq!(wrong_type.status, 415);
    // Nothing of the refused writes is in the database.
    assert_eq!(edn_call(&s, "GET", "/q", &format!("[[:find (count ?e) . :where [?e :name]] {cfg}]")).edn(), Edn::Nil);
}

#[test]
fn errors_are_data_with_client_status() {
    let s = server("");
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{{:store {{:backend :file :path {:?}}}}}", dir.path().join("db").display().to_string());
    edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    edn_call(&s, "POST", "/transact", &format!("[{cfg} [{{:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/value}}]]"));
    edn_call(&s, "POST", "/transact", &format!("[{cfg} [{{:email \"a@b.c\"}}]]"));
    let unique = edn_call(&s, "POST", "/transact", &format!("[{cfg} [{{:email \"a@b.c\"}}]]"));
    assert_eq!((unique.status, unique.code()), (400, ":transact/unique".to_string()), "{}", unique.text());
    let data = unique.edn().get_kw("ex-data").cloned().unwrap();
    assert_eq!(data.get_kw("attribute"), Some(&Edn::kw("email")), "{}", unique.text());
    assert_eq!(data.get_kw("value"), Some(&Edn::str("a@b.c")), "{}", unique.text());
    let schema = edn_call(&s, "POST", "/transact", &format!("[{cfg} [{{:email 42}}]]"));
    assert_eq!(schema.status, 400, "{}", schema.text());
    let query = edn_call(&s, "GET", "/q", &format!("[[:find ?e :where [?e :email ?v ?x ?y ?z]] {cfg}]"));
    assert_eq!(query.status, 400);
    assert!(query.code().starts_with(":query/"), "{}", query.text());
    let missing = edn_call(&s, "POST", "/transact", "[{:store {:backend :file :path \"/nonexistent/dir/db\"}} []]");
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert!(missing.edn().get_kw("msg").map(pr_str).unwrap().contains("does not exist"));
}

#[test]
fn query_timeout_is_enforced_by_the_server() {
    let s = server(":query-timeout-ms 100");
    let cfg = "{:store {:backend :memory :id \"timeout-test\"} :schema-flexibility :read}";
    edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    let people: Vec<String> = (0..300).map(|i| format!("{{:k {i}}}")).collect();
    edn_call(&s, "POST", "/transact", &format!("[{cfg} [{}]]", people.join(" ")));
    // 300^3 find tuples to aggregate: far beyond 100 ms; a query's own larger :timeout does not
    // lift the bound.
    let slow = "[:find (count ?a) (count ?b) (count ?c) :where [?a :k] [?b :k] [?c :k]]";
    for query in [slow.to_string(), format!("{{:query {slow} :timeout 600000}}")] {
        let started = std::time::Instant::now();
        let reply = edn_call(&s, "GET", "/q", &format!("[{query} {cfg}]"));
        assert_eq!((reply.status, reply.code()), (503, ":query/timeout".to_string()), "{}", reply.text());
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}

/// An answer nested deeper than the recursive writers take (a recursive pull down a long
/// chain) comes as EDN, and in the other formats as a 406 naming the limit, never a crash.
#[test]
fn a_very_deep_answer_is_refused_in_formats_that_recurse() {
    let s = server("");
    let cfg = "{:store {:backend :memory :id \"deep-answer\"} :schema-flexibility :read}";
    edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    let schema = "[{:db/ident :n :db/unique :db.unique/identity :db/cardinality :db.cardinality/one}
                   {:db/ident :next :db/valueType :db.type/ref :db/cardinality :db.cardinality/one}]";
    edn_call(&s, "POST", "/transact", &format!("[{cfg} {schema}]"));
    let n = 3000;
    let chain: Vec<String> = (0..n)
        .map(|i| {
            if i + 1 < n {
                format!("{{:db/id \"e{i}\" :n {i} :next \"e{}\"}}", i + 1)
            } else {
                format!("{{:db/id \"e{i}\" :n {i}}}")
            }
        })
        .collect();
    assert_eq!(edn_call(&s, "POST", "/transact", &format!("[{cfg} [{}]]", chain.join(" "))).status, 200);
    let args = format!("[{cfg} [:n {{:next ...}}] [:n 0]]");
    let reply = edn_call(&s, "GET", "/pull", &args);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text().matches(":next").count(), n - 1);
    for mime in ["application/json", "application/transit+json", "application/cbor"] {
        let body = encode(mime, &read_str(&args).unwrap());
        let reply = request(&s, "GET", "/pull", mime, &body, Some(TOKEN));
        assert_eq!(reply.status, 406, "{mime}: {}", reply.text());
        assert_eq!(reply.code(), ":server/not-encodable", "{mime}");
        assert!(reply.text().contains("application/edn"), "{mime}: {}", reply.text());
    }
}

#[test]
fn swagger_describes_every_remote_operation() {
    let s = server("");
    let doc: serde_json::Value =
        serde_json::from_slice(&request(&s, "GET", "/swagger.json", "application/json", b"", Some(TOKEN)).body)
            .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for op in datahike::api::OPS.iter().filter(|op| op.remote && op.run.is_some()) {
        let method = if op.pure { "get" } else { "post" };
        assert!(paths[&op.route()][method].is_object(), "{} {method}", op.route());
    }
    for route in ["/transact!-writer", "/create-database-writer", "/delete-database-writer", "/subscribe", "/stats"] {
        assert!(paths.contains_key(route), "{route}");
    }
    assert_eq!(paths["/q"]["get"]["requestBody"]["content"].as_object().unwrap().len(), 4);
}

/// Reads server-sent events until `n` tx reports came; returns their ids and reports.
fn read_events(reader: &mut impl BufRead, n: usize) -> Vec<(i64, Edn)> {
    let mut out = Vec::new();
    let (mut id, mut data, mut event) = (None, String::new(), String::new());
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended after {} events", out.len());
        let l = line.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            if event == "tx-report" {
                out.push((id.take().unwrap(), read_str(&data).unwrap()));
            } else if event == "error" {
                panic!("error event: {data}");
            }
            data.clear();
            event.clear();
        } else if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
            id = Some(v.trim().parse().unwrap());
        } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            data.push_str(v);
        } else if let Some(v) = l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")) {
            event = v.trim().to_string();
        }
    }
    out
}

fn subscribe(s: &Running, cfg: &str, last: Option<i64>) -> BufReader<ureq::BodyReader<'static>> {
    let encoded: String = cfg
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let mut request = agent()
        .get(&format!("http://{}/subscribe?config={encoded}", s.addr))
        .header("Authorization", &format!("token {TOKEN}"));
    if let Some(last) = last {
        request = request.header("Last-Event-ID", &last.to_string());
    }
    let response = request.call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    BufReader::new(response.into_body().into_reader())
}

fn names(events: &[(i64, Edn)]) -> Vec<String> {
    events
        .iter()
        .flat_map(|(_, r)| r.get_kw("tx-data").and_then(Edn::as_seq).unwrap_or(&[]).to_vec())
        .filter_map(|d| match &d {
            Edn::Tagged(_, v) => match v.as_seq() {
                Some([_, Edn::Keyword(a), Edn::Str(n), ..]) if a.as_str() == "name" => Some(n.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn live_updates_in_order_across_a_disconnect_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = db_config(&dir);
    let s = server("");
    edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    let mut stream = subscribe(&s, &cfg, None);
    let writer = |s: &Running, range: std::ops::Range<usize>| {
        for i in range {
            let r = edn_call(s, "POST", "/transact", &format!("[{cfg} [{{:name \"p{i}\"}}]]"));
            assert_eq!(r.status, 200);
        }
    };
    writer(&s, 0..5);
    let first = read_events(&mut stream, 5);
    assert_eq!(names(&first), ["p0", "p1", "p2", "p3", "p4"]);
    assert!(first.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    // Disconnect, miss five, resume from the last id seen.
    drop(stream);
    writer(&s, 5..10);
    let mut resumed = subscribe(&s, &cfg, Some(first[4].0));
    writer(&s, 10..12);
    let next = read_events(&mut resumed, 7);
    assert_eq!(names(&next), (5..12).map(|i| format!("p{i}")).collect::<Vec<_>>());
    drop(resumed);
    // A restarted server rebuilds the missed reports from the history.
    let last = next[6].0;
    s.shutdown().unwrap();
    let s = server("");
    writer(&s, 12..15);
    let mut after_restart = subscribe(&s, &cfg, Some(last));
    let rebuilt = read_events(&mut after_restart, 3);
    assert_eq!(names(&rebuilt), ["p12", "p13", "p14"]);
    assert_eq!(rebuilt.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![last + 1, last + 2, last + 3]);
}

#[test]
fn shutdown_finishes_in_flight_transactions_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = db_config(&dir);
    let s = server("");
    let addr = s.addr;
    edn_call(&s, "POST", "/create-database", &format!("[{cfg}]"));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (cfg, acknowledged) = (cfg.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let name = format!("c{c}-{i}");
                    let sent = agent()
                        .post(&format!("http://{addr}/transact"))
                        .header("Authorization", &format!("token {TOKEN}"))
                        .header("Content-Type", "application/edn")
                        .send(format!("[{cfg} [{{:name \"{name}\"}}]]").as_bytes());
                    match sent {
                        Ok(r) if r.status().as_u16() == 200 => acknowledged.lock().unwrap().push(name),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    s.shutdown().unwrap();
    for c in clients {
        c.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 8, "clients committed during the run");
    let config = datahike::Config::parse(&cfg).unwrap();
    let conn = datahike::connect(&config).unwrap();
    let stored = datahike::q(
        &read_str("[:find [?n ...] :where [?e :name ?n]]").unwrap(),
        &[datahike::QueryInput::Db(conn.db())],
    )
    .unwrap();
    let stored: std::collections::HashSet<String> = stored
        .as_seq()
        .unwrap()
        .iter()
        .map(|n| match n {
            Edn::Str(s) => s.to_string(),
            _ => panic!(),
        })
        .collect();
    for name in &acknowledged {
        assert!(stored.contains(name), "acknowledged {name} is lost");
    }
    conn.release().unwrap();
}

/// Encodes and decodes a body in one of the formats, with the library's codecs.
fn encode(mime: &str, value: &Edn) -> Vec<u8> {
    match mime {
        "application/json" => datahike::edn::json::to_tagged_json(value).into_bytes(),
        "application/transit+json" => datahike::edn::transit::to_transit_json(value).into_bytes(),
        "application/cbor" => datahike::cbor::edn_to_cbor(value),
        _ => pr_str(value).into_bytes(),
    }
}

fn decode(mime: &str, body: &[u8]) -> Edn {
    let text = || std::str::from_utf8(body).unwrap();
    match mime {
        "application/json" => datahike::edn::json::from_tagged_json(text()).unwrap(),
        "application/transit+json" => datahike::edn::transit::from_transit_json(text()).unwrap(),
        "application/cbor" => datahike::cbor::edn_from_cbor(body).unwrap(),
        _ => read_str(text()).unwrap(),
    }
}

#[test]
fn every_format_round_trips() {
    let s = server("");
    for mime in ["application/edn", "application/json", "application/transit+json", "application/cbor"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = read_str(&db_config(&dir)).unwrap();
        let call = |method: &str, route: &str, args: &str| {
            let args = read_str(&args.replace("CFG", &pr_str(&cfg))).unwrap();
            let reply = request(&s, method, route, mime, &encode(mime, &args), Some(TOKEN));
            assert_eq!(reply.status, 200, "{mime} {route}: {}", reply.text());
            assert_eq!(reply.content_type, mime);
            decode(mime, &reply.body)
        };
        call("POST", "/create-database", "[CFG]");
        call(
            "POST",
            "/transact",
            r#"[CFG [{:name "Ada" :tags :a :id #uuid "6f1d1c1e-0000-4000-8000-000000000001" :at #inst "2024-01-02T03:04:05.006Z"}]]"#,
        );
        let found = call(
            "GET",
            "/q",
            "[[:find ?n ?t ?id ?at :where [?e :name ?n] [?e :tags ?t] [?e :id ?id] [?e :at ?at]] CFG]",
        );
        let expected =
            read_str(r#"#{["Ada" :a #uuid "6f1d1c1e-0000-4000-8000-000000000001" #inst "2024-01-02T03:04:05.006Z"]}"#)
                .unwrap();
        // The result is a set of tuples in every format.
        let as_set = |v: &Edn| -> std::collections::BTreeSet<String> {
            v.as_seq()
                .map(|xs| xs.to_vec())
                .unwrap_or_else(|| match v {
                    Edn::Set(xs) => xs.clone(),
                    _ => vec![],
                })
                .iter()
                .map(pr_str)
                .collect()
        };
        assert_eq!(as_set(&found), as_set(&expected), "{mime}: {}", pr_str(&found));
        let pulled = call("GET", "/pull", "[CFG [:name :db/id] 1]");
        assert_eq!(pulled.get_kw("name"), Some(&Edn::str("Ada")), "{mime}: {}", pr_str(&pulled));
    }
    // JSON clients send keywords as strings where Datahike's server reads them by position.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").display().to_string();
    let json = |route: &str, body: &str| {
        let reply = request(&s, "POST", route, "application/json", body.as_bytes(), Some(TOKEN));
        assert_eq!(reply.status, 200, "{route}: {}", reply.text());
        reply.text()
    };
    let cfg = format!(r#"{{"store": {{"backend": "file", "path": {path:?}}}}}"#);
    json("/create-database", &format!("[{cfg}]"));
    json(
        "/transact",
        &format!(
            r#"[{cfg}, [{{"db/ident": "name", "db/valueType": "db.type/string", "db/cardinality": "db.cardinality/one", "db/unique": "db.unique/identity"}}, {{"db/ident": "kind", "db/valueType": "db.type/keyword", "db/cardinality": "db.cardinality/one"}}]]"#
        ),
    );
    json(
        "/transact",
        &format!(r#"[{cfg}, [{{"name": "Ada", "kind": "person"}}, ["db/add", ["name", "Ada"], "kind", "admin"]]]"#),
    );
    let found = json("/q", &format!(r#"["[:find ?k . :where [?e :name \"Ada\"] [?e :kind ?k]]", {cfg}]"#));
    assert_eq!(found, r#"["!kw","admin"]"#);
}
