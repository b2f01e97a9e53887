//! The benchmark queries of `shared/bench/WORKLOAD.md` on a generated people graph, checked
//! against answers computed directly from the generated data (a naive oracle).

mod common;

use common::{edn, transact, write_db};
use datahike::{q, Edn, QueryInput};
use std::collections::{BTreeMap, BTreeSet};

const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :last-name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :sex :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :salary :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :follows :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;

struct Person {
    id: i64,
    name: &'static str,
    last: &'static str,
    male: bool,
    age: i64,
    salary: i64,
    follows: Vec<i64>,
}

/// splitmix64, as the benchmark generator uses.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        common::splitmix64(&mut self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn generate(n: i64) -> Vec<Person> {
    let names = ["Ivan", "Petr", "Sergei", "Oleg", "Yuri", "Dmitry", "Fedor", "Denis"];
    let lasts = ["Ivanov", "Petrov", "Sidorov", "Kovalev", "Kuznetsov", "Voronoi"];
    let mut r = Rng(42);
    (1..=n)
        .map(|i| {
            let id = 1000 + i;
            let name = names[r.below(8) as usize];
            let last = lasts[r.below(6) as usize];
            let male = r.below(2) == 0;
            let age = r.below(100) as i64;
            let salary = r.below(100_000) as i64;
            let k = r.below(6);
            let mut follows = Vec::new();
            while (follows.len() as u64) < k {
                let f = 1000 + 1 + r.below(n as u64) as i64;
                if f != id && !follows.contains(&f) {
                    follows.push(f);
                }
            }
            Person { id, name, last, male, age, salary, follows }
        })
        .collect()
}

fn tx_text(people: &[Person]) -> String {
    let mut s = String::from("[");
    for p in people {
        s.push_str(&format!(
            "{{:db/id {} :name {:?} :last-name {:?} :sex {} :age {} :salary {} :email \"user{}@example.com\"",
            p.id,
            p.name,
            p.last,
            if p.male { ":male" } else { ":female" },
            p.age,
            p.salary,
            p.id - 1000
        ));
        if !p.follows.is_empty() {
            s.push_str(&format!(" :follows {:?}", p.follows));
        }
        s.push_str("}\n");
    }
    s.push(']');
    s
}

fn rows(result: &Edn) -> BTreeSet<Vec<String>> {
    let items = result.as_seq().unwrap_or_else(|| panic!("not a collection: {result}"));
    items.iter().map(|r| r.as_seq().expect("tuple").iter().map(|x| x.to_string()).collect()).collect()
}

fn set_of<T: ToString>(xs: impl IntoIterator<Item = Vec<T>>) -> BTreeSet<Vec<String>> {
    xs.into_iter().map(|r| r.into_iter().map(|x| x.to_string()).collect()).collect()
}

fn within(people: &BTreeMap<i64, &Person>, start: i64, max_depth: Option<usize>) -> BTreeSet<i64> {
    let mut seen = BTreeSet::new();
    let mut frontier = vec![start];
    let mut depth = 0;
    while !frontier.is_empty() && max_depth.is_none_or(|m| depth < m) {
        depth += 1;
        let mut next = Vec::new();
        for x in frontier {
            for f in people.get(&x).map(|p| p.follows.as_slice()).unwrap_or(&[]) {
                if seen.insert(*f) {
                    next.push(*f);
                }
            }
        }
        frontier = next;
    }
    seen
}

#[test]
fn workload_queries_match_the_oracle() {
    let people = generate(1000);
    let conn = write_db(SCHEMA);
    transact(&conn, &tx_text(&people));
    let db = conn.db();
    let by_id: BTreeMap<i64, &Person> = people.iter().map(|p| (p.id, p)).collect();
    let run = |query: &str, extra: &[Edn]| {
        let mut inputs = vec![QueryInput::Db(db.clone())];
        inputs.extend(extra.iter().cloned().map(QueryInput::Edn));
        q(&edn(query), &inputs).unwrap_or_else(|e| panic!("{e}: {query}"))
    };
    let ivans: Vec<&Person> = people.iter().filter(|p| p.name == "Ivan").collect();

    let got = run(r#"[:find ?e :where [?e :name "Ivan"]]"#, &[]);
    assert_eq!(rows(&got), set_of(ivans.iter().map(|p| vec![p.id])), "q1");

    let got = run(r#"[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a]]"#, &[]);
    assert_eq!(rows(&got), set_of(ivans.iter().map(|p| vec![p.id, p.age])), "q2");

    let got = run(r#"[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a] [?e :sex :male]]"#, &[]);
    assert_eq!(rows(&got), set_of(ivans.iter().filter(|p| p.male).map(|p| vec![p.id, p.age])), "q3");

    let got = run(r#"[:find ?e ?l ?a :where [?e :name "Ivan"] [?e :last-name ?l] [?e :age ?a] [?e :sex :male]]"#, &[]);
    let want = set_of(
        ivans.iter().filter(|p| p.male).map(|p| vec![p.id.to_string(), format!("{:?}", p.last), p.age.to_string()]),
    );
    assert_eq!(rows(&got), want, "q4");

    let got = run("[:find ?e ?s :where [?e :salary ?s] [(> ?s 50000)]]", &[]);
    assert_eq!(rows(&got), set_of(people.iter().filter(|p| p.salary > 50000).map(|p| vec![p.id, p.salary])), "qpred");

    let got = run(
        r#"[:find ?e ?f :where [?e :name "Ivan"] [?e :age ?a] [(> ?a 18)] [?e :follows ?f] [?f :sex :female]]"#,
        &[],
    );
    let want = set_of(
        ivans
            .iter()
            .filter(|p| p.age > 18)
            .flat_map(|p| p.follows.iter().filter(|f| !by_id[*f].male).map(|f| vec![p.id, *f]).collect::<Vec<_>>()),
    );
    assert_eq!(rows(&got), want, "qpred-join");

    let got = run("[:find ?a (count ?e) (max ?s) :where [?e :age ?a] [?e :salary ?s]]", &[]);
    let mut groups: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for p in &people {
        let g = groups.entry(p.age).or_insert((0, i64::MIN));
        g.0 += 1;
        g.1 = g.1.max(p.salary);
    }
    assert!(matches!(got, Edn::Vector(_)), "aggregates give a vector");
    assert_eq!(rows(&got), set_of(groups.iter().map(|(a, (c, m))| vec![*a, *c, *m])), "qagg");
    let got = run("[:find ?a (avg ?s) :where [?e :age ?a] [?e :salary ?s]]", &[]);
    assert_eq!(got.as_seq().map(<[Edn]>::len), Some(groups.len()));

    let start = people.iter().find(|p| p.follows.len() >= 3).expect("a start").id;
    let hops = edn("[[(hop1 ?x ?y) [?x :follows ?y]]
          [(hop2 ?x ?y) (hop1 ?x ?y)]
          [(hop2 ?x ?y) [?x :follows ?t] (hop1 ?t ?y)]
          [(hop3 ?x ?y) (hop2 ?x ?y)]
          [(hop3 ?x ?y) [?x :follows ?t] (hop2 ?t ?y)]
          [(hop4 ?x ?y) (hop3 ?x ?y)]
          [(hop4 ?x ?y) [?x :follows ?t] (hop3 ?t ?y)]]");
    let want4 = set_of(within(&by_id, start, Some(4)).into_iter().map(|y| vec![y]));
    let got = run("[:find ?y :in $ % ?start :where (hop4 ?start ?y)]", &[hops, Edn::Int(start)]);
    assert_eq!(rows(&got), want4, "rule-hops");

    let depth = edn("[[(reach ?x ?y ?d) [?x :follows ?y]]
          [(reach ?x ?y ?d) [(> ?d 1)] [(dec ?d) ?d2] [?x :follows ?t] (reach ?t ?y ?d2)]]");
    let got =
        run("[:find ?y :in $ % ?start ?depth :where (reach ?start ?y ?depth)]", &[depth, Edn::Int(start), Edn::Int(4)]);
    assert_eq!(rows(&got), want4, "rule-depth");

    let reach = edn("[[(follows ?x ?y) [?x :follows ?y]]
          [(follows ?x ?y) [?x :follows ?t] (follows ?t ?y)]]");
    let got = run("[:find ?y :in $ % ?start :where (follows ?start ?y)]", &[reach, Edn::Int(start)]);
    let want = set_of(within(&by_id, start, None).into_iter().map(|y| vec![y]));
    assert!(want.len() > 100, "the graph is connected enough to test recursion");
    assert_eq!(rows(&got), want, "rule-reach");
    conn.release().unwrap();
}
