import VaporCSQLite
public import SluiceCore
import Foundation

/// The embedded default target and store: one SQLite file (`./sluice.db` unless
/// configured), opened in WAL mode so readers keep working while a load runs.
public final class SQLiteTarget: TableCatalog {
    public let connection: SQLiteConnection
    /// The database file (nil for a view over a connection opened elsewhere).
    public let path: String?
    static let metaTable = "_sluice_tables"

    /// Opens (creating if needed) the database at `path`.
    public init(path: String, cacheMiB: Int = 32) throws(SluiceError) {
        connection = try SQLiteConnection(path: path)
        self.path = path
        try connection.executeWhenFree("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            PRAGMA cache_size = -\(cacheMiB * 1024);
            PRAGMA temp.cache_size = -\(cacheMiB * 1024);
            CREATE TABLE IF NOT EXISTS \(Self.metaTable) (name TEXT PRIMARY KEY, schema TEXT NOT NULL) STRICT;
            """)
    }

    /// Wraps a connection that is already set up (used inside a worker's commit).
    init(existing c: SQLiteConnection) {
        connection = c
        path = nil
    }

    public func tableExists(_ table: String) throws(SluiceError) -> Bool {
        try !connection.query("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [.text(table)]).isEmpty
    }

    /// The schema of an existing table: as Sluice recorded it when it made the table,
    /// else read from SQLite's catalog (declared types mapped to the nearest logical type).
    public func schema(of table: String) throws(SluiceError) -> TableSchema? {
        guard try tableExists(table) else { return nil }
        let catalog = try catalogSchema(table)
        if try !connection.query("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [.text(Self.metaTable)]).isEmpty,
           let text = try connection.query("SELECT schema FROM \(Self.metaTable) WHERE name = ?1", [.text(table)]).first?.first?.string,
           let recorded = SchemaCodec.decode(text),
           recorded.columns.map(\.name) == catalog.columns.map(\.name) {
            return recorded
        }
        return catalog
    }

    func catalogSchema(_ table: String) throws(SluiceError) -> TableSchema {
        let rows = try connection.query("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)", [.text(table)])
        var columns: [ColumnSchema] = []
        var keys: [(Int64, String)] = []
        for r in rows {
            let name = r[0].string ?? ""
            let declared = r[1].string ?? ""
            columns.append(ColumnSchema(name: name, type: Self.logicalType(declared: declared), nullable: r[2].int == 0))
            if let pk = r[3].int, pk > 0 { keys.append((pk, name)) }
        }
        return TableSchema(columns: columns, primaryKey: keys.sorted { $0.0 < $1.0 }.map(\.1))
    }

    /// SQLite's type-affinity rules, after trying the name as one of ours (`date`, `uuid`...).
    public static func logicalType(declared: String) -> ColumnType {
        if let t = ColumnType(parsing: declared) { return t }
        let d = declared.uppercased()
        if d.contains("INT") { return .int64 }
        if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") { return .text }
        if d.contains("BLOB") { return .bytes }
        if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") { return .float64 }
        return .text
    }

    func recordSchema(_ table: String, _ schema: TableSchema) throws(SluiceError) {
        try connection.execute("CREATE TABLE IF NOT EXISTS \(Self.metaTable) (name TEXT PRIMARY KEY, schema TEXT NOT NULL) STRICT")
        let st = try connection.prepare("INSERT INTO \(Self.metaTable) (name, schema) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET schema = excluded.schema")
        st.bind(1, .text(table))
        st.bind(2, .text(SchemaCodec.encode(schema)))
        try st.step()
    }

    /// Inside a write transaction: creates the table if missing, checks an existing one
    /// fits the load, and (replace) empties or rebuilds it. Records the table's schema: the
    /// load's for a table it made, else the table's own with any columns it added.
    func prepareTable(_ table: String, _ schema: TableSchema, mode: WriteMode, evolve: Bool = false) throws(SluiceError) {
        let conn = connection
        let quoted = SQLIdentifier.quoteValidated(table)
        let existing = try self.schema(of: table)
        switch try TablePreparation.decide(table: table, existing: existing, load: schema, mode: mode, evolve: evolve) {
        case .create:
            try conn.execute(SQLiteSQL.createTable(table, schema, ifNotExists: false))
        case .rebuild:
            try conn.execute("DROP TABLE \(quoted)")
            try conn.execute(SQLiteSQL.createTable(table, schema, ifNotExists: false))
        case .empty:
            try conn.execute("DELETE FROM \(quoted)")
        case .keep(let adding):
            for c in adding {
                try conn.execute("ALTER TABLE \(quoted) ADD COLUMN \(SQLIdentifier.quoteValidated(c.name)) \(SQLiteSQL.storageType(c.type))")
            }
            if let existing {
                try recordSchema(table, TableSchema(columns: existing.columns + adding, primaryKey: existing.primaryKey))
                return
            }
        }
        try recordSchema(table, schema)
    }

    /// Starts a load into `table` (created from `schema` when missing); rows that do not fit
    /// in memory are staged at `stagePath` (by default a file in the system's temporary folder).
    public func beginLoad(table: String, schema: TableSchema, mode: WriteMode, evolve: Bool = false,
                          stagePath: String? = nil) async throws(SluiceError) -> SQLiteSink {
        guard let path else { throw SluiceError(.unsupported, "a load needs the database's path") }
        let stage = stagePath ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("sluice-stage-\(UInt64.random(in: 0...UInt64.max)).db")
        return try await SQLiteSink.open(databasePath: path, stagePath: stage, table: table, schema: schema, mode: mode, evolve: evolve)
    }
}

/// Schemas recorded in `_sluice_tables` as compact JSON.
enum SchemaCodec {
    static func encode(_ s: TableSchema) -> String {
        let cols = s.columns.map { c in
            JSONValue.object([
                JSONMember(key: "name", value: .string(c.name)),
                JSONMember(key: "type", value: .string(c.type.name)),
                JSONMember(key: "nullable", value: .bool(c.nullable)),
            ])
        }
        return JSONValue.object([
            JSONMember(key: "columns", value: .array(cols)),
            JSONMember(key: "primary_key", value: .array(s.primaryKey.map { .string($0) })),
        ]).text
    }

    static func decode(_ text: String) -> TableSchema? {
        guard let v = try? JSONParser.parse(text), case .array(let cols)? = v["columns"], case .array(let keys)? = v["primary_key"] else { return nil }
        var columns: [ColumnSchema] = []
        for c in cols {
            guard case .string(let name)? = c["name"], case .string(let t)? = c["type"], let type = ColumnType(parsing: t),
                  case .bool(let nullable)? = c["nullable"] else { return nil }
            columns.append(ColumnSchema(name: name, type: type, nullable: nullable))
        }
        var pk: [String] = []
        for k in keys {
            guard case .string(let s) = k else { return nil }
            pk.append(s)
        }
        return TableSchema(columns: columns, primaryKey: pk)
    }
}
