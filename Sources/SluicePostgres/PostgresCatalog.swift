public import SluiceCore
public import PostgresNIO
import NIOCore

extension PostgresPool {
    /// Columns (logical and native types, nullability), primary key and unique keys of
    /// `table`, or nil if missing.
    public func schema(of table: QualifiedName, on conn: PostgresConnection) async throws -> TableSchema? {
        let cols = try await conn.query(Self.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
            FROM pg_attribute a
            WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [.text(table.quoted)]), logger: logger).get().rows
        if cols.isEmpty { return nil }
        var columns: [ColumnSchema] = []
        for r in cols {
            let (name, type, notNull) = try r.decode((String, String, Bool).self)
            var c = ColumnSchema(name: name, type: PostgresSQL.logicalType(type), nullable: !notNull)
            c.nativeType = type
            columns.append(c)
        }
        // Unique indexes over plain columns, whole-table (not partial): each can match rows.
        let keys = try await conn.query(Self.query("""
            SELECT i.indisprimary, array_agg(a.attname::text ORDER BY k.ord)
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
            GROUP BY i.indexrelid, i.indisprimary
            ORDER BY i.indisprimary DESC, i.indexrelid
            """, [.text(table.quoted)]), logger: logger).get().rows
        var schema = TableSchema(columns: columns)
        for r in keys {
            let (primary, names) = try r.decode((Bool, [String]).self)
            if primary { schema.primaryKey = names } else { schema.uniqueKeys.append(names) }
        }
        return schema
    }

    /// Whether schema `name` exists (creating one needs a privilege a loading user may lack).
    public func schemaExists(_ name: String, on conn: PostgresConnection) async throws -> Bool {
        let rows = try await conn.query(Self.query("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", [.text(name)]), logger: logger).get().rows
        return try rows.first?.decode(Bool.self) ?? false
    }

    /// Runs a statement and returns how many rows it affected (INSERT, UPDATE, DELETE, MERGE...).
    @discardableResult
    public func exec(_ sql: String, _ binds: [PGValue] = [], on conn: PostgresConnection) async throws -> Int64 {
        let result = try await conn.query(Self.query(sql, binds), logger: logger).get()
        if let n = result.metadata.rows { return Int64(n) }
        // MERGE's tag ("MERGE 42") is not parsed by postgres-nio.
        return Int64(result.metadata.command.split(separator: " ").last.flatMap { Int64($0) } ?? 0)
    }
}
