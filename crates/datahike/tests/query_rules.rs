//! Rules: non-recursive, recursive over cycles, mutually recursive, constants and required
//! variables in calls, rules given as a string, rule calls inside `or` and `not`.

mod common;

use common::{edn, read_db, transact};
use datahike::{q, Edn, QueryInput};

fn run(db: &datahike::Db, query: &str, rules: &str, extra: &[&str]) -> Edn {
    let mut inputs = vec![QueryInput::Db(db.clone()), QueryInput::Edn(edn(rules))];
    inputs.extend(extra.iter().map(|x| QueryInput::Edn(edn(x))));
    q(&edn(query), &inputs).unwrap_or_else(|e| panic!("{e}: {query}"))
}

const GRAPH: &str = "[[:db/add 1 :edge 2] [:db/add 2 :edge 3] [:db/add 3 :edge 1] [:db/add 3 :edge 4]
                      [:db/add 5 :edge 6] [:db/add 1 :color :red] [:db/add 4 :color :blue]]";
const PATH: &str = "[[(path ?a ?b) [?a :edge ?b]] [(path ?a ?b) [?a :edge ?x] (path ?x ?b)]]";

#[test]
fn recursive_rules() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :edge :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]");
    transact(&conn, GRAPH);
    let db = conn.db();
    let all = run(&db, "[:find ?a ?b :in $ % :where (path ?a ?b)]", PATH, &[]);
    assert_eq!(all.as_seq().map(<[Edn]>::len), Some(13), "{all}");
    assert_eq!(run(&db, "[:find ?b :in $ % :where (path 1 ?b)]", PATH, &[]), edn("#{[1] [2] [3] [4]}"));
    assert_eq!(run(&db, "[:find ?a :in $ % :where (path ?a 4)]", PATH, &[]), edn("#{[1] [2] [3]}"));
    assert_eq!(run(&db, "[:find ?a :in $ % :where (path ?a ?a)]", PATH, &[]), edn("#{[1] [2] [3]}"));
    assert_eq!(run(&db, "[:find ?b :in $ % ?s :where (path ?s ?b)]", PATH, &["5"]), edn("#{[6]}"));
    // Left recursion gives the same answers.
    let left = "[[(path ?a ?b) [?a :edge ?b]] [(path ?a ?b) (path ?a ?x) [?x :edge ?b]]]";
    assert_eq!(run(&db, "[:find ?b :in $ % :where (path 1 ?b)]", left, &[]), edn("#{[1] [2] [3] [4]}"));
    // Rules as a string, with a join after the call.
    let got = run(&db, "[:find ?c :in $ % :where (path 2 ?b) [?b :color ?c]]", &format!("{PATH:?}"), &[]);
    assert_eq!(got, edn("#{[:red] [:blue]}"));
    // Mutual recursion: even and odd path lengths from 1.
    let parity = "[[(even ?a ?b) [?a :edge ?x] (odd ?x ?b)]
                   [(odd ?a ?b) [?a :edge ?b]]
                   [(odd ?a ?b) [?a :edge ?x] (even ?x ?b)]]";
    assert_eq!(run(&db, "[:find ?b :in $ % :where (even 1 ?b)]", parity, &[]), edn("#{[1] [2] [3] [4]}"));
    assert_eq!(run(&db, "[:find ?b :in $ % :where (odd 5 ?b)]", parity, &[]), edn("#{[6]}"));
    // Rule calls inside or / not.
    let got = run(&db, "[:find ?n :in $ % :where [?n :color _] (not (path 4 ?n))]", PATH, &[]);
    assert_eq!(got, edn("#{[1] [4]}"));
    let got = run(&db, "[:find ?b :in $ % :where (or (path 5 ?b) [?b :color :blue])]", PATH, &[]);
    assert_eq!(got, edn("#{[6] [4]}"));
    // Required variables.
    let req = "[[(next [?a] ?b) [?a :edge ?b]]]";
    assert_eq!(run(&db, "[:find ?b :in $ % :where (next 3 ?b)]", req, &[]), edn("#{[1] [4]}"));
    let err =
        q(&edn("[:find ?b :in $ % :where (next ?a ?b)]"), &[QueryInput::Db(db.clone()), QueryInput::Edn(edn(req))])
            .unwrap_err();
    assert!(err.to_string().contains("Insufficient bindings"), "{err}");
    // Bad rules.
    let err = q(
        &edn("[:find ?b :in $ % :where (path 1 ?b)]"),
        &[QueryInput::Db(db.clone()), QueryInput::Edn(edn("[[path]]"))],
    )
    .unwrap_err();
    assert!(err.to_string().contains("Cannot parse rule"), "{err}");
    let err = q(&edn("[:find ?b :in $ % :where (path 1 ?b 2)]"), &[QueryInput::Db(db), QueryInput::Edn(edn(PATH))])
        .unwrap_err();
    assert!(err.to_string().contains("takes 2 arguments"), "{err}");
    conn.release().unwrap();
}

/// A rule whose body compares an argument needs that argument bound by the call: the call waits
/// for the clause that binds it, wherever it stands (found by the DataScript differential test,
/// where the call ran first and failed with insufficient bindings).
#[test]
fn rule_arguments_a_body_compares_wait_for_their_binding() {
    let conn = read_db();
    transact(&conn, "[{:db/id 1 :age 10 :floor 5} {:db/id 2 :age 20 :floor 15} {:db/id 3 :age 30 :floor 25}]");
    // Enough other datoms that the planner would rather run the call (with one constant) first.
    let others: Vec<String> = (10..30).map(|e| format!("{{:db/id {e} :age 100 :floor 100}}")).collect();
    transact(&conn, &format!("[{}]", others.join(" ")));
    let db = conn.db();
    let band = "[[(in-band ?e ?lo ?hi) [?e :age ?a] [(<= ?lo ?a)] [(<= ?a ?hi)]]]";
    // ?lo comes from the pattern before the call, ?hi is a constant that makes the call look cheap.
    let got = run(&db, "[:find ?e ?f :in $ % :where [?f :floor ?lo] (in-band ?e ?lo 25)]", band, &[]);
    assert_eq!(got, edn("#{[1 1] [2 1] [2 2]}"));
    // The same with the binding clause after the call.
    let got = run(&db, "[:find ?e ?f :in $ % :where (in-band ?e ?lo 25) [?f :floor ?lo]]", band, &[]);
    assert_eq!(got, edn("#{[1 1] [2 1] [2 2]}"));
    let got = run(&db, "[:find ?e :in $ % :where [?e :floor ?lo] (in-band ?e ?lo 17)]", band, &[]);
    assert_eq!(got, edn("#{[1]}"));
    // Unbound everywhere, it is still an error.
    let err = q(
        &edn("[:find ?e :in $ % :where (in-band ?e ?lo 25)]"),
        &[QueryInput::Db(db.clone()), QueryInput::Edn(edn(band))],
    )
    .unwrap_err();
    assert!(err.to_string().contains("Insufficient bindings"), "{err}");
    conn.release().unwrap();
}

/// A chain of non-recursive rules whose branches end in calls of the same rule (evaluated
/// once over the union of the branches' arguments) answers as the recursive rule does, with
/// every argument shape: bound first, bound second, constants, repeated variables, a callee
/// with required arguments, and a head variable bound only by the call.
#[test]
fn non_recursive_chains_share_calls_between_branches() {
    let conn = read_db();
    transact(&conn, "[{:db/ident :edge :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]");
    // A graph with a cycle (1 2 3), a tail (3 -> 4 -> 7), a self-loop (8) and an island (5 -> 6).
    transact(
        &conn,
        "[[:db/add 1 :edge 2] [:db/add 2 :edge 3] [:db/add 3 :edge 1] [:db/add 3 :edge 4] [:db/add 4 :edge 7]
          [:db/add 8 :edge 8] [:db/add 5 :edge 6] [:db/add 1 :color :red] [:db/add 4 :color :blue]]",
    );
    let db = conn.db();
    let hops = "[[(hop1 ?x ?y) [?x :edge ?y]]
                 [(hop2 ?x ?y) (hop1 ?x ?y)] [(hop2 ?x ?y) [?x :edge ?t] (hop1 ?t ?y)]
                 [(hop3 ?x ?y) (hop2 ?x ?y)] [(hop3 ?x ?y) [?x :edge ?t] (hop2 ?t ?y)]
                 [(reach ?x ?y ?d) [?x :edge ?y]]
                 [(reach ?x ?y ?d) [(> ?d 1)] [(dec ?d) ?d2] [?x :edge ?t] (reach ?t ?y ?d2)]
                 [(two-ways ?x ?y) (hop1 ?x ?y)] [(two-ways ?x ?y) (hop1 ?y ?x)]
                 [(loop ?x) (hop1 ?x ?x)] [(loop ?x) [?x :edge ?t] (hop2 ?t ?x)]
                 [(next [?a] ?b) [?a :edge ?b]]
                 [(via-next ?x ?y) (next ?x ?y)] [(via-next ?x ?y) [?x :edge ?t] (next ?t ?y)]
                 [(colored ?x ?c) [?x :color ?c]]
                 [(reds ?x ?c) (colored ?x :red) [(ground :red) ?c]] [(reds ?x ?c) [?x :edge ?t] (colored ?t ?c)]]";
    for start in 1..=8 {
        let s = start.to_string();
        let chain = run(&db, "[:find ?y :in $ % ?s :where (hop3 ?s ?y)]", hops, &[&s]);
        let recursive = run(&db, "[:find ?y :in $ % ?s :where (reach ?s ?y 3)]", hops, &[&s]);
        assert_eq!(chain, recursive, "from {start}");
        // The second argument bound instead of the first.
        let back = run(&db, "[:find ?x :in $ % ?s :where (hop3 ?x ?s)]", hops, &[&s]);
        let back_rec = run(&db, "[:find ?x :in $ % ?s :where (reach ?x ?s 3)]", hops, &[&s]);
        assert_eq!(back, back_rec, "to {start}");
    }
    assert_eq!(run(&db, "[:find ?y :in $ % :where (hop3 1 ?y)]", hops, &[]), edn("#{[1] [2] [3] [4]}"));
    // Both arguments free, one relation for all starts.
    let all = run(&db, "[:find ?x ?y :in $ % :where (hop2 ?x ?y)]", hops, &[]);
    let all_rec = run(&db, "[:find ?x ?y :in $ % :where (reach ?x ?y 2)]", hops, &[]);
    assert_eq!(all, all_rec);
    assert_eq!(all.as_seq().map(<[Edn]>::len), Some(12), "{all}");
    // Branches calling the same rule with different arguments bound.
    assert_eq!(run(&db, "[:find ?y :in $ % :where (two-ways 4 ?y)]", hops, &[]), edn("#{[3] [7]}"));
    // A repeated variable in the call.
    assert_eq!(run(&db, "[:find ?x :in $ % :where (loop ?x)]", hops, &[]), edn("#{[1] [2] [3] [8]}"));
    // A callee with a required argument, bound in every branch.
    assert_eq!(run(&db, "[:find ?y :in $ % :where (via-next 3 ?y)]", hops, &[]), edn("#{[1] [4] [2] [7]}"));
    // A constant argument, and a head variable bound by the call alone.
    assert_eq!(run(&db, "[:find ?c :in $ % :where (reds 1 ?c)]", hops, &[]), edn("#{[:red]}"));
    assert_eq!(run(&db, "[:find ?x ?c :in $ % :where (reds ?x ?c)]", hops, &[]), edn("#{[1 :red] [3 :red] [3 :blue]}"));
    // query-stats shows each shared call once, under the first branch's form, with the rows
    // all branches gave it.
    let stats = datahike::query::query_stats(
        &edn("[:find ?y :in $ % :where (hop3 1 ?y)]"),
        &[QueryInput::Db(db.clone()), QueryInput::Edn(edn(hops))],
    )
    .unwrap();
    let text = datahike::edn::pr_str(&stats);
    assert!(text.contains(":clause (hop2 ?x ?y), :type :rule, :rows-in 2, :rows-out 5"), "{text}");
    assert!(text.contains(":clause (hop1 ?x ?y), :type :rule, :rows-in 4, :rows-out 5"), "{text}");
}
