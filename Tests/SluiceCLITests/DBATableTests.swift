import Testing
import Foundation

/// Tables a DBA made in PostgreSQL, loaded as a user would (issue 19): keys the database
/// fills, natural keys on UNIQUE indexes, array columns, and schemas that are not Sluice's.
@Suite(.serialized) struct DBATableTests {
    static let people = "CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, name text, tags text[], scores int[], docs jsonb[])"

    @Test func anIdentityKeyIsFilledByTheDatabaseAndAUniqueColumnMerges() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query(Self.people)
        let cli = try CLI()
        cli.write("a.csv", "email,name\na@x,Ann\nb@x,Bob\n")
        // No key in the file: append (the database numbers the rows), not an error.
        let r1 = try cli.run(["load", "a.csv", "--into", "people", "--database", pg.url])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(r1.out.contains("(append") && r1.out.contains("inserted  2"), "\(r1.out)")
        // Merging needs a natural key: the error names the UNIQUE one to use.
        cli.write("b.csv", "email,name\nb@x,Bobby\nc@x,Cy\n")
        let r2 = try cli.run(["load", "b.csv", "--into", "people", "--mode", "merge", "--database", pg.url])
        #expect(r2.status != 0 && r2.err.contains("--key email"), "\(r2.err)")
        let r3 = try cli.run(["load", "b.csv", "--into", "people", "--key", "email", "--database", pg.url])
        #expect(r3.status == 0, "\(r3.err)")
        #expect(r3.out.contains("inserted  1") && r3.out.contains("updated   1"), "\(r3.out)")
        #expect(try pg.query("SELECT id, email, name FROM people ORDER BY id") == "1|a@x|Ann\n2|b@x|Bobby\n3|c@x|Cy\n")
        // A key that is neither the primary key nor UNIQUE is refused before anything is written.
        let r4 = try cli.run(["load", "b.csv", "--into", "people", "--key", "name", "--database", pg.url])
        #expect(r4.status != 0 && r4.err.contains("UNIQUE key: (email)"), "\(r4.err)")
    }

    @Test func arrayColumnsTakeJSONArraysAndArrayLiteralsAndRejectBadRowsAlone() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query(Self.people)
        let cli = try CLI()
        cli.write("a.csv", """
            email,tags,scores,docs
            a@x,"[""a"",""b c""]","{1,2}","[{""k"":1},[2]]"
            b@x,"{x,""y z""}",[3],
            c@x,[],"[1,""x""]",
            d@x,,"{4,5}","{}"

            """)
        let r = try cli.run(["load", "a.csv", "--into", "people", "--json", "--database", pg.url])
        #expect(r.status == 0, "\(r.err)")
        let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
        #expect(stats["inserted"] == 3 && stats["rejected"] == 1, "\(stats)")
        #expect(try pg.query("SELECT email, tags, scores, docs FROM people ORDER BY email") == """
            a@x|{a,"b c"}|{1,2}|{"{\\"k\\": 1}",[2]}
            b@x|{x,"y z"}|{3}|
            d@x||{4,5}|{}

            """)
        let rejects = try #require(FileManager.default.subpathsOfDirectory(atPath: cli.dir + "/.sluice/loads").first { $0.hasSuffix("rejects.csv") })
        let text = try String(contentsOfFile: cli.dir + "/.sluice/loads/" + rejects, encoding: .utf8)
        #expect(text.contains("c@x") && text.contains("invalid input syntax for type integer"), "\(text)")
    }

    /// `numeric` without a precision takes what PostgreSQL takes (here 43 digits), which used
    /// to be rejected past 38; a value PostgreSQL refuses is rejected alone, with its message.
    @Test func anUnboundedNumericFollowsTheColumnsOwnLimits() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("CREATE TABLE big (id int PRIMARY KEY, v numeric, w numeric(10,2))")
        let cli = try CLI()
        cli.write("b.csv", "id,v,w\n1,123456789012345678901234567890123456789012.5,1.25\n2,7,3\n3,abc,4\n4,1e3,5\n")
        let r = try cli.run(["load", "b.csv", "--into", "big", "--json", "--database", pg.url])
        #expect(r.status == 0, "\(r.err)")
        let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
        #expect(stats["inserted"] == 3 && stats["rejected"] == 1, "\(stats)")
        #expect(try pg.query("SELECT id, v, w FROM big ORDER BY id") == "1|123456789012345678901234567890123456789012.5|1.25\n2|7|3.00\n4|1000|5.00\n")
        let rejects = try #require(FileManager.default.subpathsOfDirectory(atPath: cli.dir + "/.sluice/loads").first { $0.hasSuffix("rejects.csv") })
        #expect(try String(contentsOfFile: cli.dir + "/.sluice/loads/" + rejects, encoding: .utf8).contains("invalid input syntax for type numeric: \"\"abc\"\""))
    }

    /// Naive timestamps into timestamptz are read in the database session's zone, as
    /// `psql \copy` reads them (they used to be taken as UTC: 3 h off under São Paulo);
    /// `timezone:` on the entity overrides, and SQLite (no session zone) uses it or UTC.
    @Test func naiveTimestampsFollowTheSessionZoneLikePsql() throws {
        let pg = try TestPostgres.fresh()
        let db = String(pg.url.split(separator: "/").last!)
        _ = try pg.query("ALTER DATABASE \(db) SET timezone TO 'America/Sao_Paulo'")
        _ = try pg.query("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz); CREATE TABLE ev_psql (id int PRIMARY KEY, at timestamptz)")
        let cli = try CLI()
        let file = cli.write("ev.csv", "id,at\n1,2024-01-02 10:00:00\n2,2024-07-02T10:00:00-01:00\n3,2024-03-10 02:30:00\n")
        _ = try TestPostgres.run(["psql", pg.url, "-qc", "\\copy ev_psql FROM '\(file)' CSV HEADER"])
        let r = try cli.run(["load", "ev.csv", "--into", "ev", "--database", pg.url])
        #expect(r.status == 0, "\(r.err)")
        let utc = "SET timezone TO 'UTC'; SELECT id, at FROM "
        #expect(try pg.query(utc + "ev ORDER BY id") == pg.query(utc + "ev_psql ORDER BY id"))
        #expect(try pg.query(utc + "ev WHERE id = 1") == "1|2024-01-02 13:00:00+00\n")
        // The entity's zone wins; on SQLite too.
        cli.write("sluice.yml", "entities:\n  ev:\n    timezone: UTC\n    primary_key: [id]\n    columns: {id: int64, at: timestamptz}\n")
        #expect(try cli.run(["load", "ev.csv", "--into", "ev", "--database", pg.url]).status == 0)
        #expect(try pg.query(utc + "ev WHERE id = 1") == "1|2024-01-02 10:00:00+00\n")
        cli.write("sluice.yml", "entities:\n  ev:\n    timezone: America/Sao_Paulo\n    primary_key: [id]\n    columns: {id: int64, at: timestamptz}\n")
        #expect(try cli.run(["load", "ev.csv", "--into", "ev"]).status == 0)
        #expect(try cli.sqlite("SELECT at FROM ev ORDER BY id") == "2024-01-02 13:00:00.000000Z\n2024-07-02 11:00:00.000000Z\n2024-03-10 05:30:00.000000Z\n")
        cli.write("sluice.yml", "entities:\n  ev:\n    timezone: Mars/Olympus\n")
        let bad = try cli.run(["load", "ev.csv", "--into", "ev"])
        #expect(bad.status != 0 && bad.err.contains("unknown time zone 'Mars/Olympus'"), "\(bad.err)")
    }

    /// Connected as user `sluice`, PostgreSQL's default search path finds Sluice's own schema
    /// first: `--into jobs` must still load `public.jobs`, and Sluice's tables are never a target.
    @Test func userTablesNeverLandInSluicesSchema() throws {
        let pg = try TestPostgres.fresh()
        #expect(try pg.query("SELECT current_user") == "sluice\n")
        _ = try pg.query("CREATE SCHEMA sluice; CREATE TABLE sluice.jobs (id bigint PRIMARY KEY, note text)")
        let cli = try CLI()
        cli.write("j.csv", "id,note\n1,mine\n")
        let r1 = try cli.run(["load", "j.csv", "--into", "jobs", "--key", "id", "--database", pg.url])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(try pg.query("SELECT note FROM public.jobs") == "mine\n")
        #expect(try pg.query("SELECT count(*) FROM sluice.jobs") == "0\n")
        let r2 = try cli.run(["load", "j.csv", "--into", "sluice.jobs", "--database", pg.url])
        #expect(r2.status != 0 && r2.err.contains("Sluice's own tables"), "\(r2.err)")
        // A configured target_schema takes every table named without one.
        cli.write("sluice.yml", "target_schema: analytics\n")
        let r3 = try cli.run(["load", "j.csv", "--into", "jobs", "--key", "id", "--database", pg.url])
        #expect(r3.status == 0, "\(r3.err)")
        #expect(try pg.query("SELECT note FROM analytics.jobs") == "mine\n")
        cli.write("sluice.yml", "target_schema: sluice\n")
        let r4 = try cli.run(["load", "j.csv", "--into", "jobs", "--database", pg.url])
        #expect(r4.status != 0 && r4.err.contains("target_schema"), "\(r4.err)")
    }
}
