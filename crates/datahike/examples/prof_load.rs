use datahike::{edn, Config, Edn};
use std::time::Instant;
fn main() {
    let text = std::fs::read_to_string("/tmp/benchdata/n20000/people.edn").unwrap();
    let people: Vec<Edn> = text.lines().map(|l| edn::read_str(l).unwrap()).collect();
    let schema = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :last-name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :sex :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :salary :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :follows :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;
    let mut c = Config::memory("prof");
    c.keep_history = false;
    datahike::create_database(&c).unwrap();
    let conn = datahike::connect(&c).unwrap();
    conn.transact(&edn::read_str(schema).unwrap()).unwrap();
    let db = conn.db();
    let tx = Edn::Vector(people);
    for _ in 0..3 {
        let t = Instant::now();
        let out = datahike::tx::run(&db, &tx, None, 0).unwrap();
        let t1 = t.elapsed();
        let t = Instant::now();
        let r = db.with(&tx).unwrap();
        let t2 = t.elapsed();
        println!("run {:?}  with(run+apply) {:?} datoms {}", t1, t2, out.tx_data.len());
        drop(r);
    }
}
