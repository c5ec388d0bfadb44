public import SluiceCore
import Foundation

/// SQL text for the MySQL target, built by pure functions from validated schemas. Names pass
/// through ``SQLIdentifier`` (backquoted); the only values spliced in are ours (line numbers,
/// digests) or hex literals, so no text from a file or request is ever parsed as SQL.
public enum MySQLSQL {
    /// A string as a hex literal in the connection's character set: safe whatever it holds.
    public static func literal(_ s: String) -> String {
        s.isEmpty ? "''" : "_utf8mb4 X'" + s.utf8.map { String(format: "%02X", $0) }.joined() + "'"
    }

    /// The column type a table created by Sluice gets; `key` columns must fit an index.
    public static func typeName(_ t: ColumnType, key: Bool = false) -> String {
        switch t {
        case .int64: "BIGINT"
        case .float64: "DOUBLE"
        case .decimal(let p, let s):
            s.map { "DECIMAL(\(min(p, 65)),\(min($0, 30)))" } ?? (p >= ColumnType.maxDecimalPrecision ? "DECIMAL(65,30)" : "DECIMAL(\(min(p, 65)),0)")
        case .bool: "BOOLEAN"
        case .text: key ? "VARCHAR(255)" : "LONGTEXT"
        case .date: "DATE"
        case .timestamp, .timestamptz: "DATETIME(6)"
        case .time: "TIME(6)"
        case .uuid: "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin"
        case .json: "JSON"
        case .bytes: key ? "VARBINARY(255)" : "LONGBLOB"
        }
    }

    /// The stage's type for a column: wide enough that `LOAD DATA` (which, with LOCAL, turns
    /// conversion errors into warnings) never clips a value; the conversion to the table's
    /// own type happens in `INSERT ... SELECT` under strict mode, where it fails loudly.
    /// Key columns of a keyed stage must fit an index: text up to 768 characters (a longer
    /// key is clipped, which the load's warning check turns into an error).
    static func stageType(_ t: ColumnType, collation: String?, key: Bool = false) -> String {
        if key {
            switch t {
            case .text, .json, .decimal: return "VARCHAR(768) CHARACTER SET utf8mb4 COLLATE \(collation ?? "utf8mb4_bin")"
            case .bytes: return "VARBINARY(3072)"
            default: break
            }
        }
        return switch t {
        case .int64: "BIGINT"
        case .float64: "DOUBLE"
        case .bool: "TINYINT"
        case .date: "DATE"
        case .timestamp, .timestamptz: "DATETIME(6)"
        case .time: "TIME(6)"
        case .uuid: "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin"
        case .bytes: "LONGBLOB"
        case .decimal, .text, .json: "LONGTEXT CHARACTER SET utf8mb4 COLLATE \(collation ?? "utf8mb4_bin")"
        }
    }

    public static let stage = "sluice_stage"
    public static let receipts = "sluice_load_receipts"

    static func stageColumn(_ i: Int) -> String { "c\(i + 1)" }
    static let line = "sluice_line"
    static let op = "sluice_op"

    /// `CREATE TABLE` for the load's schema (the key as the primary key), InnoDB, utf8mb4.
    static func createTable(_ table: QualifiedName, _ schema: TableSchema) -> String {
        var defs = schema.columns.map { c in
            SQLIdentifier.backquoteValidated(c.name) + " " + typeName(c.type, key: schema.primaryKey.contains(c.name)) + (c.nullable && !schema.primaryKey.contains(c.name) ? "" : " NOT NULL")
        }
        if !schema.primaryKey.isEmpty { defs.append("PRIMARY KEY (\(schema.primaryKey.map(SQLIdentifier.backquoteValidated).joined(separator: ", ")))") }
        return "CREATE TABLE \(table.backquoted) (\(defs.joined(separator: ", "))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    }

    static func addColumn(_ table: QualifiedName, _ c: ColumnSchema) -> String {
        "ALTER TABLE \(table.backquoted) ADD COLUMN \(SQLIdentifier.backquoteValidated(c.name)) \(typeName(c.type))"
    }

    /// The temporary stage: the schema's columns (generated names), the source line and the
    /// op. A `keyed` stage has the key as its primary key, and `LOAD DATA ... REPLACE` keeps
    /// the last row per key as it loads: no sort afterwards.
    static func createStage(_ schema: TableSchema, keyed: Bool, collations: [String: String]) -> String {
        var cols = schema.columns.enumerated().map { i, c in
            "\(stageColumn(i)) \(stageType(c.type, collation: collations[c.name], key: keyed && schema.primaryKey.contains(c.name)))"
        }
        cols += ["\(line) BIGINT NOT NULL", "\(op) TINYINT NOT NULL"]
        if keyed { cols.append("PRIMARY KEY (\(keyColumns(schema).joined(separator: ", ")))") }
        return "CREATE TEMPORARY TABLE \(stage) (\(cols.joined(separator: ", "))) ENGINE=InnoDB"
    }

    /// The streaming `LOAD DATA` into the stage, in ``BulkTextEncoder``'s MySQL dialect.
    static func loadStage(_ schema: TableSchema, keyed: Bool) -> String {
        load(into: stage, schema.columns.indices.map(stageColumn), schema, replace: keyed, extra: [line, op])
    }

    /// The streaming `LOAD DATA` straight into a table Sluice made in this load (the line
    /// and op go to variables and are dropped).
    static func loadTable(_ table: QualifiedName, _ schema: TableSchema) -> String {
        load(into: table.backquoted, schema.columns.map { SQLIdentifier.backquoteValidated($0.name) }, schema, replace: true, extra: ["@sluice_line", "@sluice_op"])
    }

    static func load(into: String, _ names: [String], _ schema: TableSchema, replace: Bool, extra: [String]) -> String {
        var targets: [String] = []
        var sets: [String] = []
        for (i, c) in schema.columns.enumerated() {
            if c.type == .bytes {
                targets.append("@b\(i + 1)")
                sets.append("\(names[i]) = UNHEX(SUBSTRING(@b\(i + 1), 3))")  // after `\x`
            } else {
                targets.append(names[i])
            }
        }
        targets += extra
        return "LOAD DATA LOCAL INFILE 'sluice.tsv' \(replace ? "REPLACE " : "")INTO TABLE \(into) CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
            + "LINES TERMINATED BY '\\n' (\(targets.joined(separator: ", ")))" + (sets.isEmpty ? "" : " SET " + sets.joined(separator: ", "))
    }

    /// `DELETE` of the rows with these keys (each key's values as SQL literals).
    static func deleteKeys(_ table: QualifiedName, _ schema: TableSchema, _ keys: [[String]]) -> String {
        let cols = schema.primaryKey.map(SQLIdentifier.backquoteValidated).joined(separator: ", ")
        let tuples = keys.map { "(" + $0.joined(separator: ", ") + ")" }.joined(separator: ", ")
        return "DELETE FROM \(table.backquoted) WHERE (\(cols)) IN (\(tuples))"
    }

    static func keyColumns(_ schema: TableSchema) -> [String] {
        schema.primaryKey.compactMap { k in schema.columns.firstIndex { $0.name == k }.map(stageColumn) }
    }

    static func keyJoin(_ schema: TableSchema, _ a: String, _ b: String) -> String {
        schema.primaryKey.map { k in
            let i = schema.columns.firstIndex { $0.name == k }!
            return "\(b).\(SQLIdentifier.backquoteValidated(k)) = \(a).\(stageColumn(i))"
        }.joined(separator: " AND ")
    }

    static func range(_ r: Range<Int64>?, _ alias: String) -> String {
        r.map { " AND \(alias).\(line) >= \($0.lowerBound) AND \(alias).\(line) < \($0.upperBound)" } ?? ""
    }

    static func columnList(_ schema: TableSchema) -> String {
        schema.columns.map { SQLIdentifier.backquoteValidated($0.name) }.joined(separator: ", ")
    }

    /// Inserts the staged upserts (in `lines`); with `upsert`, a key already there is updated.
    static func insertStaged(_ table: QualifiedName, _ schema: TableSchema, upsert: Bool, _ lines: Range<Int64>? = nil) -> String {
        let values = schema.columns.indices.map { "f." + stageColumn($0) }.joined(separator: ", ")
        var sql = "INSERT INTO \(table.backquoted) (\(columnList(schema))) SELECT \(values) FROM \(stage) f WHERE f.\(op) = 0\(range(lines, "f"))"
        let updates = schema.columns.filter { !schema.primaryKey.contains($0.name) }.map {
            "\(SQLIdentifier.backquoteValidated($0.name)) = VALUES(\(SQLIdentifier.backquoteValidated($0.name)))"
        }
        if upsert && !schema.primaryKey.isEmpty {
            // A table of key columns only has nothing to update: set the key to itself.
            let k = SQLIdentifier.backquoteValidated(schema.primaryKey[0])
            sql += " ON DUPLICATE KEY UPDATE " + (updates.isEmpty ? "\(k) = \(k)" : updates.joined(separator: ", "))
        }
        return sql
    }

    static func deleteStaged(_ table: QualifiedName, _ schema: TableSchema, _ lines: Range<Int64>? = nil) -> String {
        "DELETE t FROM \(table.backquoted) t JOIN \(stage) f ON \(keyJoin(schema, "f", "t")) WHERE f.\(op) = 1\(range(lines, "f"))"
    }

    /// Append with a key: lines whose key is in the table already, or earlier in the load.
    static func appendConflicts(_ table: QualifiedName, _ schema: TableSchema) -> String {
        let keys = keyColumns(schema)
        let first = SQLIdentifier.backquoteValidated(schema.primaryKey[0])
        return "SELECT s.\(line) FROM (SELECT \(keys.joined(separator: ", ")), \(line), ROW_NUMBER() OVER (PARTITION BY \(keys.joined(separator: ", ")) ORDER BY \(line)) AS sluice_rn "
            + "FROM \(stage) WHERE \(op) = 0) s LEFT JOIN \(table.backquoted) t ON \(keyJoin(schema, "s", "t")) WHERE s.sluice_rn > 1 OR t.\(first) IS NOT NULL ORDER BY s.\(line)"
    }

    /// One staged row as text, for a reject's values.
    static func rowText(_ schema: TableSchema, line l: Int64) -> String {
        "SELECT \(schema.columns.indices.map { "CAST(\(stageColumn($0)) AS CHAR)" }.joined(separator: ", ")) FROM \(stage) WHERE \(line) = \(l)"
    }

    static func createReceipts(_ name: String) -> String {
        "CREATE TABLE IF NOT EXISTS \(name) (id VARCHAR(191) CHARACTER SET ascii NOT NULL PRIMARY KEY, result LONGTEXT NOT NULL, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
    }

    static func insertReceipt(_ name: String, id: String, result: String) -> String {
        "INSERT INTO \(name) (id, result, created_at) VALUES (\(literal(id)), \(literal(result)), UTC_TIMESTAMP(6))"
    }
}
