//! Pull expressions in `:find`, as Datahike runs them: one pull per result row.

use datahike::{edn::read_str, Config, Edn, QueryInput};

#[test]
fn pull_in_find_returns_maps() {
    let config = Config::parse("{:store {:backend :memory :id \"query-pull\"} :schema-flexibility :read}").unwrap();
    let _ = datahike::delete_database(&config);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str(r#"[{:db/id 10 :name "Judea" :age 30} {:db/id 11 :name "Ivan" :age 5}]"#).unwrap())
        .unwrap();
    let db = conn.db();
    let q = read_str(r#"[:find (pull ?e [*]) . :in $ ?name :where [?e :name ?name]]"#).unwrap();
    let r = datahike::q(&q, &[QueryInput::from(db.clone()), QueryInput::from(Edn::str("Judea"))]).unwrap();
    assert_eq!(r.to_string(), r#"{:db/id 10, :age 30, :name "Judea"}"#);
    // A pattern passed as an input, and a collection find spec.
    let q = read_str(r#"[:find [(pull ?e pattern) ...] :in $ pattern :where [?e :age ?a] [(> ?a 1)]]"#).unwrap();
    let r = datahike::q(&q, &[QueryInput::from(db.clone()), QueryInput::from(read_str("[:name]").unwrap())]).unwrap();
    let Edn::Vector(maps) = &r else { panic!("expected a vector, got {r}") };
    let mut names: Vec<String> = maps.iter().map(|m| m.to_string()).collect();
    names.sort();
    assert_eq!(names, vec![r#"{:name "Ivan"}"#, r#"{:name "Judea"}"#]);
    // A pattern input with a wildcard or a map spec, which is no query value (found by the
    // DataScript differential test: such an input failed as an unsupported input value).
    let q = read_str(r#"[:find (pull ?e pattern) . :in $ pattern ?n :where [?e :name ?n]]"#).unwrap();
    for (pattern, expected) in
        [("[*]", r#"{:db/id 11, :age 5, :name "Ivan"}"#), ("[:age {:friend [:name]}]", "{:age 5}")]
    {
        let inputs =
            [QueryInput::from(db.clone()), QueryInput::from(read_str(pattern).unwrap()), Edn::str("Ivan").into()];
        assert_eq!(datahike::q(&q, &inputs).unwrap().to_string(), expected, "pattern {pattern}");
    }
    datahike::delete_database(&config).unwrap();
}

/// An entity variable bound to a lookup ref by :in pulls the entity it names (found by the
/// DataScript differential test: the lookup ref came back unpulled).
#[test]
fn pull_in_find_resolves_a_lookup_ref() {
    let config =
        Config::parse("{:store {:backend :memory :id \"query-pull-lookup\"} :schema-flexibility :read}").unwrap();
    let _ = datahike::delete_database(&config);
    datahike::create_database(&config).unwrap();
    let conn = datahike::connect(&config).unwrap();
    conn.transact(&read_str("[{:db/ident :email :db/unique :db.unique/identity}]").unwrap()).unwrap();
    conn.transact(&read_str(r#"[{:db/id 10 :email "ivan@x" :age 30}]"#).unwrap()).unwrap();
    let q = read_str("[:find ?e (pull ?e [:age]) :in $ ?e :where [?e :age _]]").unwrap();
    let r = datahike::q(&q, &[QueryInput::from(conn.db()), read_str(r#"[:email "ivan@x"]"#).unwrap().into()]).unwrap();
    assert_eq!(r.to_string(), r#"#{[[:email "ivan@x"] {:age 30}]}"#);
    // A value that names no entity is an error, as in Datahike.
    let q = read_str("[:find (pull ?e [:age]) . :in $ ?e :where [_ :age 30]]").unwrap();
    let err = datahike::q(&q, &[QueryInput::from(conn.db()), read_str(r#"[:email "nobody"]"#).unwrap().into()]);
    assert!(err.as_ref().is_err_and(|e| e.to_string().contains("Nothing found")), "{err:?}");
    datahike::delete_database(&config).unwrap();
}
