public import SluiceCore
public import PostgresNIO
import NIOCore

extension PostgresPool {
    /// Columns (logical types, nullability) and primary key of `table`, or nil if missing.
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
            columns.append(ColumnSchema(name: name, type: PostgresSQL.logicalType(type), nullable: !notNull))
        }
        let keys = try await conn.query(Self.query("""
            SELECT a.attname FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = to_regclass($1::text) AND i.indisprimary
            ORDER BY k.ord
            """, [.text(table.quoted)]), logger: logger).get().rows
        return TableSchema(columns: columns, primaryKey: try keys.map { try $0.decode(String.self) })
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
