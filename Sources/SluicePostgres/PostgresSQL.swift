public import SluiceCore

/// SQL text for the PostgreSQL target, built by pure functions from validated schemas.
/// User-given names only ever pass through ``SQLIdentifier``; the staging table uses
/// generated column names (`c1`, `c2`, ...), because postgres-nio splices COPY's table and
/// column names into its statement without escaping them.
public enum PostgresSQL {
    public static func typeName(_ t: ColumnType) -> String {
        switch t {
        case .int64: "bigint"
        case .float64: "double precision"
        case .decimal(let p, let s?): "numeric(\(p),\(s))"
        case .decimal(_, nil): "numeric"
        case .bool: "boolean"
        case .text: "text"
        case .date: "date"
        case .timestamp: "timestamp"
        case .timestamptz: "timestamptz"
        case .time: "time"
        case .uuid: "uuid"
        case .json: "jsonb"
        case .bytes: "bytea"
        }
    }

    /// The logical type of a PostgreSQL column (`format_type` text), nearest match.
    public static func logicalType(_ pgType: String) -> ColumnType {
        let t = pgType.lowercased()
        if t.hasPrefix("numeric") || t.hasPrefix("decimal") { return ColumnType(parsing: t) ?? .decimal(precision: 38, scale: nil) }
        switch t {
        case "bigint", "integer", "smallint": return .int64
        case "double precision", "real": return .float64
        case "boolean": return .bool
        case "date": return .date
        case "timestamp without time zone": return .timestamp
        case "timestamp with time zone": return .timestamptz
        case "time without time zone": return .time
        case "uuid": return .uuid
        case "jsonb", "json": return .json
        case "bytea": return .bytes
        default: return .text
        }
    }

    static func q(_ s: String) -> String { SQLIdentifier.quoteValidated(s) }

    public static func createTable(_ table: QualifiedName, _ schema: TableSchema, primaryKey: Bool = true) -> String {
        var defs = schema.columns.map { c in "\(q(c.name)) \(typeName(c.type))\(c.nullable ? "" : " NOT NULL")" }
        if primaryKey && !schema.primaryKey.isEmpty { defs.append("PRIMARY KEY (\(schema.primaryKey.map(q).joined(separator: ", ")))") }
        return "CREATE TABLE \(table.quoted) (\(defs.joined(separator: ", ")))"
    }

    /// `table` as postgres-nio's `COPY "<table>"` takes it: the driver wraps what it is given
    /// in one pair of quotes, so each part's quotes are doubled and the parts joined by
    /// `"."`, which makes `"schema"."name"`.
    public static func copyTableName(_ table: QualifiedName) -> String {
        ((table.schema.map { [$0] } ?? []) + [table.name]).map { String(q($0).dropFirst().dropLast()) }.joined(separator: "\".\"")
    }

    public static func addPrimaryKey(_ table: QualifiedName, _ schema: TableSchema) -> String {
        "ALTER TABLE \(table.quoted) ADD PRIMARY KEY (\(schema.primaryKey.map(q).joined(separator: ", ")))"
    }

    // MARK: Staging

    public static let lineColumn = "sluice_line"
    public static let opColumn = "sluice_op"

    /// Generated staging column name for schema column `i`.
    public static func stageColumn(_ i: Int) -> String { "c\(i + 1)" }

    public static func stageColumns(_ schema: TableSchema) -> [String] {
        schema.columns.indices.map(stageColumn) + [lineColumn, opColumn]
    }

    static func stageDefinitions(_ schema: TableSchema) -> String {
        (schema.columns.enumerated().map { "\(stageColumn($0.offset)) \(typeName($0.element.type))" }
            + ["\(lineColumn) bigint NOT NULL", "\(opColumn) smallint NOT NULL"]).joined(separator: ", ")
    }

    /// A temporary, unlogged-by-nature stage dropped at commit (one connection's load).
    public static func createStage(_ stage: String, _ schema: TableSchema) -> String {
        "CREATE TEMP TABLE \(q(stage)) (\(stageDefinitions(schema))) ON COMMIT DROP"
    }

    /// The shared stage of a chunked job: unlogged (scratch, never replicated), filled by
    /// several workers' COPYs, merged once. `stage` is a quoted reference.
    public static func createSharedStage(_ stage: String, _ schema: TableSchema) -> String {
        "CREATE UNLOGGED TABLE IF NOT EXISTS \(stage) (\(stageDefinitions(schema)))"
    }

    static func keyCols(_ schema: TableSchema, prefix: String) -> String {
        schema.keyIndices.map { prefix + stageColumn($0) }.joined(separator: ", ")
    }

    /// The last row per key, in key order (DISTINCT ON keeps the first of each key group).
    /// Stage and final table arguments of the builders below are quoted SQL references.
    public static func lastRowPerKey(_ stage: String, _ schema: TableSchema) -> String {
        "SELECT DISTINCT ON (\(keyCols(schema, prefix: ""))) * FROM \(stage) ORDER BY \(keyCols(schema, prefix: "")), \(lineColumn) DESC"
    }

    static func targetCols(_ schema: TableSchema) -> String { schema.columns.map { q($0.name) }.joined(separator: ", ") }

    static func stageSelect(_ schema: TableSchema, prefix: String) -> String {
        schema.columns.indices.map { value(schema, $0, prefix: prefix) }.joined(separator: ", ")
    }

    /// Stage column `i` as the table's column takes it. An array column (`text[]`, `int[]`,
    /// `jsonb[]`, read from the catalog) is staged as text and takes a JSON array or an
    /// array literal (`{a,b}`); a value that is neither fails its row alone (pinning). An
    /// unbounded `numeric` staged as text is cast.
    static func value(_ schema: TableSchema, _ i: Int, prefix: String) -> String {
        let v = prefix + stageColumn(i)
        // An unbounded numeric staged as text: PostgreSQL checks each value (pinning rejects a bad one).
        if schema.columns[i].nativeType == "numeric", schema.columns[i].type == .text { return "\(v)::numeric" }
        guard let native = schema.columns[i].nativeType, native.hasSuffix("[]"),
              native.utf8.allSatisfy({ isTypeNameByte($0) }) else { return v }
        let elements = native.hasPrefix("json") ? "jsonb_array_elements(\(v)::jsonb)" : "jsonb_array_elements_text(\(v)::jsonb)"
        return "(CASE WHEN left(ltrim(\(v)), 1) = '[' THEN ARRAY(SELECT \(elements))::\(native) ELSE \(v)::\(native) END)"
    }

    /// Bytes of a type name as `format_type` spells a built-in one (`character varying(20)[]`).
    static func isTypeNameByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x20 || b == 0x5F || b == 0x28 || b == 0x29 || b == 0x2C || b == 0x5B || b == 0x5D
    }

    static func keyJoin(_ schema: TableSchema, stageAlias s: String, tableAlias t: String) -> String {
        schema.keyIndices.map { "\(t).\(q(schema.columns[$0].name)) = \(s).\(stageColumn($0))" }.joined(separator: " AND ")
    }

    /// Empty target (or replace): insert the last row per key that is not a delete.
    public static func insertLastRows(_ table: QualifiedName, _ stage: String, _ schema: TableSchema) -> String {
        if schema.primaryKey.isEmpty {
            return "INSERT INTO \(table.quoted) (\(targetCols(schema))) SELECT \(stageSelect(schema, prefix: "")) FROM \(stage) WHERE \(opColumn) = 0 ORDER BY \(lineColumn)"
        }
        return "INSERT INTO \(table.quoted) (\(targetCols(schema))) SELECT \(stageSelect(schema, prefix: "f.")) FROM (\(lastRowPerKey(stage, schema))) f WHERE f.\(opColumn) = 0"
    }

    public static let existedColumn = "sluice_existed"

    /// The last row per key materialised in key order, each marked with whether its key is
    /// in the table (run under a lock that keeps other writers out, so the mark stays true).
    public static func createFinal(_ final: String, _ stage: String, _ table: QualifiedName, _ schema: TableSchema) -> String {
        let firstKey = q(schema.columns[schema.keyIndices[0]].name)
        return "CREATE TEMP TABLE \(final) ON COMMIT DROP AS SELECT f.*, t.\(firstKey) IS NOT NULL AS \(existedColumn) "
            + "FROM (\(lastRowPerKey(stage, schema))) f LEFT JOIN \(table.quoted) t ON \(keyJoin(schema, stageAlias: "f", tableAlias: "t"))"
    }

    /// Inserts, updates and deletes the merge will make.
    public static func countFinal(_ final: String) -> String {
        """
        SELECT count(*) FILTER (WHERE \(opColumn) = 0 AND NOT \(existedColumn)),
               count(*) FILTER (WHERE \(opColumn) = 0 AND \(existedColumn)),
               count(*) FILTER (WHERE \(opColumn) = 1 AND \(existedColumn))
        FROM \(final)
        """
    }

    /// MERGE straight from the stage, deduplicated on the fly (the sort's output is in key
    /// order, ready for a merge join with the primary key).
    public static func mergeFromStage(_ table: QualifiedName, _ stage: String, _ schema: TableSchema) -> String {
        merge(table, "", schema, source: "(\(lastRowPerKey(stage, schema)))")
    }

    /// This transaction's inserted, updated and deleted tuple counts for a table so far.
    public static func transactionCounters(_ table: QualifiedName) -> String {
        """
        SELECT pg_stat_get_xact_tuples_inserted(r), pg_stat_get_xact_tuples_updated(r), pg_stat_get_xact_tuples_deleted(r)
        FROM (SELECT to_regclass($1::text)::oid AS r) x
        """
    }

    /// One MERGE: delete by op, update the rest of the matched keys, insert new ones.
    public static func merge(_ table: QualifiedName, _ final: String, _ schema: TableSchema, source: String? = nil) -> String {
        let keys = Set(schema.keyIndices)
        let others = schema.columns.indices.filter { !keys.contains($0) }
        var s = "MERGE INTO \(table.quoted) t USING \(source ?? final) f ON \(keyJoin(schema, stageAlias: "f", tableAlias: "t"))\n"
        s += "WHEN MATCHED AND f.\(opColumn) = 1 THEN DELETE\n"
        if !others.isEmpty {
            s += "WHEN MATCHED THEN UPDATE SET \(others.map { "\(q(schema.columns[$0].name)) = \(value(schema, $0, prefix: "f."))" }.joined(separator: ", "))\n"
        }
        s += "WHEN NOT MATCHED AND f.\(opColumn) = 0 THEN INSERT (\(targetCols(schema))) VALUES (\(stageSelect(schema, prefix: "f.")))"
        return s
    }

    // MARK: Pinning refused rows (the slow path)

    /// The final set for pinning when there is no key: every row is its own "key".
    public static func createFinalWithoutKey(_ final: String, _ stage: String) -> String {
        "CREATE TEMP TABLE \(final) ON COMMIT DROP AS SELECT *, false AS \(existedColumn) FROM \(stage)"
    }

    static func range(_ alias: String) -> String { "\(alias)\(lineColumn) >= $1 AND \(alias)\(lineColumn) < $2" }

    /// How many final rows fall in a line range [$1, $2), and what applying them does.
    public static func countRange(_ final: String) -> String {
        """
        SELECT count(*), count(*) FILTER (WHERE \(opColumn) = 0 AND NOT \(existedColumn)),
               count(*) FILTER (WHERE \(opColumn) = 0 AND \(existedColumn)),
               count(*) FILTER (WHERE \(opColumn) = 1 AND \(existedColumn))
        FROM \(final) WHERE \(range(""))
        """
    }

    /// MERGE restricted to final rows with lines in [$1, $2).
    public static func mergeRange(_ table: QualifiedName, _ final: String, _ schema: TableSchema) -> String {
        merge(table, final, schema, source: "(SELECT * FROM \(final) WHERE \(range("")))")
    }

    /// INSERT of the upsert rows of final with lines in [$1, $2).
    public static func insertRange(_ table: QualifiedName, _ final: String, _ schema: TableSchema) -> String {
        "INSERT INTO \(table.quoted) (\(targetCols(schema))) SELECT \(stageSelect(schema, prefix: "")) FROM \(final) WHERE \(opColumn) = 0 AND \(range(""))"
    }

    /// The text of one final row's values, for its reject.
    /// The one row in lines [$1, $2): its line, then its values as text.
    public static func rowText(_ final: String, _ schema: TableSchema) -> String {
        "SELECT \(lineColumn)::text, \(schema.columns.indices.map { stageColumn($0) + "::text" }.joined(separator: ", ")) FROM \(final) "
            + "WHERE \(lineColumn) >= $1 AND \(lineColumn) < $2"
    }

    /// Append with a key: rows whose key is already in the table, or repeated earlier in the load.
    public static func appendConflicts(_ table: QualifiedName, _ stage: String, _ schema: TableSchema) -> String {
        let keySelect = keyCols(schema, prefix: "s.")
        return """
            SELECT s.\(lineColumn) FROM \(stage) s
            WHERE EXISTS (SELECT 1 FROM \(table.quoted) t WHERE \(keyJoin(schema, stageAlias: "s", tableAlias: "t")))
               OR s.\(lineColumn) > (SELECT min(s2.\(lineColumn)) FROM \(stage) s2 WHERE (\(keyCols(schema, prefix: "s2."))) = (\(keySelect)))
            ORDER BY s.\(lineColumn)
            """
    }
}
