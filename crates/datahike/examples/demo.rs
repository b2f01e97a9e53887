//! A short tour on the file backend: create a database, transact schema and data, read the
//! indices back, reopen from disk. Run with `cargo run --release -p datahike --example demo`.

use datahike::{edn::read_str, Config, Edn, IndexOrder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("datahike-demo-{}", std::process::id()));
    let config = Config::parse(&format!("{{:store {{:backend :file :path {:?}}}}}", path.display().to_string()))?;
    println!("config: {}", config.to_edn());
    datahike::create_database(&config)?;
    let conn = datahike::connect(&config)?;

    let schema = read_str(
        r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
            {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#,
    )?;
    conn.transact(&schema)?;
    let report = conn.transact(&read_str(
        r#"[{:db/id -1 :name "Alice" :age 20 :friend [{:name "Bob" :age 30}]}
            [:db/add "carl" :name "Carl"] [:db/add "carl" :age 40] [:db/add "carl" :friend -1]]"#,
    )?)?;
    println!("tempids: {:?}", report.tempids);
    println!("tx-data:");
    for d in &report.tx_data {
        println!("  {d}");
    }
    // An upsert on the unique identity :name changes Alice's age instead of adding a person.
    conn.transact(&read_str(r#"[{:name "Alice" :age 21}]"#)?)?;
    let db = conn.db();
    println!("AVET :age 20..40:");
    for d in db.index_range(datahike::Keyword::new("age"), &Edn::Int(20), &Edn::Int(40))? {
        println!("  {d}");
    }
    println!("schema: {}", db.schema_edn());
    conn.release()?;

    // Reopen from disk: the log and the flushed indices give back the same datoms.
    let conn = datahike::connect(&config)?;
    let alice = conn.db().entid(&read_str(r#"[:name "Alice"]"#)?)?.expect("Alice is there");
    println!("after reopening, Alice's datoms:");
    for d in conn.db().datoms(IndexOrder::Eavt, &[Edn::Int(alice)])? {
        println!("  {d}");
    }
    conn.release()?;
    datahike::delete_database(&config)?;
    println!("database deleted: exists = {}", datahike::database_exists(&config)?);
    Ok(())
}
