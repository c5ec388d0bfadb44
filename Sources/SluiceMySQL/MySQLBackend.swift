public import SluiceCore
public import SluiceQueue
import Foundation

/// A MySQL or MariaDB database as a target only: it holds tables; the control plane and the
/// export ledger stay on SQLite or PostgreSQL (`control:`), and a worker's job completes
/// there after the MySQL transaction committed, fenced by a receipt (``ReceiptFencedTarget``).
public struct MySQLBackend: Backend {
    public let pool: MySQLPool
    public init(pool: MySQLPool) { self.pool = pool }

    public static func isURL(_ s: String) -> Bool { MySQLConfig.isURL(s) }

    /// Runs `body` with the backend at `url`; its pool is closed when `body` returns.
    public static func with<T: Sendable>(url: String, maxConnections: Int, _ body: @Sendable (MySQLBackend) async throws -> T) async throws -> T {
        let pool = try MySQLPool(url: url, maxConnections: maxConnections)
        defer { pool.shutdown() }
        return try await body(MySQLBackend(pool: pool))
    }

    public var target: any DataTarget { MySQLDataTarget(pool: pool) }
    public func controlPlane() throws(SluiceError) -> (any QueueDriver)? { nil }
    public func exportStore() async throws -> (any ExportStore)? { nil }
    public var wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? { nil }
    public var displayName: String { pool.displayURL }
}

/// The tables of a MySQL database.
public struct MySQLDataTarget: ReceiptTarget {
    public let pool: MySQLPool
    public init(pool: MySQLPool) { self.pool = pool }

    public func schema(of table: String) async throws(SluiceError) -> TableSchema? {
        let name = try QualifiedName(table)
        do {
            return try await pool.withConnection { c in try await Self.describe(name, on: c)?.schema }
        } catch {
            throw MySQLConnection.error(error, "reading the schema of '\(table)'")
        }
    }

    public func sink(entity: Entity, mode: WriteMode, scratchDir: String, completing: JobCompletion?) async throws(SluiceError) -> any LoadSink {
        let load = try await MySQLLoad.open(pool: pool, table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve,
                                            receipt: completing.map { ($0.receipt, $0) })
        load.encoder.nanAsNull = entity.nanAsNull  // set before any write
        return load
    }

    public func receipt(_ id: String) async throws(SluiceError) -> JobResult? {
        do {
            return try await pool.withConnection { c -> JobResult? in
                let rows = try await c.query("SELECT result FROM \(MySQLSQL.receipts) WHERE id = \(MySQLSQL.literal(id))").rows
                guard let text = rows.first?.first ?? nil else { return nil }
                return try JSONDecoder().decode(JobResult.self, from: Data(text.utf8))
            }
        } catch let e as MySQLProtocol.ServerError where e.code == 1146 {
            return nil  // no receipts table yet: nothing was ever loaded for a job here
        } catch {
            throw MySQLConnection.error(error, "reading the receipt of \(id)")
        }
    }

    /// What Sluice needs to know of an existing table.
    struct Described {
        var schema: TableSchema
        /// Text columns' collations (the stage compares keys the table's way).
        var collations: [String: String]
        /// Columns MySQL computes (never loaded) and triggers (refused: counts and the
        /// replace swap cannot honour them).
        var generated: [String]
        var triggers: [String]
    }

    /// Reads `table`'s columns, key, collations, generated columns and triggers; nil if absent.
    static func describe(_ table: QualifiedName, on c: MySQLConnection) async throws -> Described? {
        let db = table.schema.map(MySQLSQL.literal) ?? "DATABASE()"
        let name = MySQLSQL.literal(table.name)
        let cols = try await c.query("""
            SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA
            FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = \(db) AND TABLE_NAME = \(name) ORDER BY ORDINAL_POSITION
            """).rows
        if cols.isEmpty { return nil }
        let key = try await c.query("""
            SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
            WHERE TABLE_SCHEMA = \(db) AND TABLE_NAME = \(name) AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION
            """).rows.compactMap { $0.first ?? nil }
        // MariaDB keeps JSON as LONGTEXT with a json_valid() check named after the column.
        let checks = (try? await c.query("""
            SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = \(db) AND TABLE_NAME = \(name)
            """).rows.compactMap { $0.first ?? nil }) ?? []
        let triggers = try await c.query("""
            SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = \(db) AND EVENT_OBJECT_TABLE = \(name)
            """).rows.compactMap { $0.first ?? nil }
        var d = Described(schema: TableSchema(columns: [], primaryKey: key), collations: [:], generated: [], triggers: triggers)
        for r in cols {
            guard r.count == 9, let colName = r[0], let dataType = r[1]?.lowercased(), let colType = r[2]?.lowercased() else { continue }
            if let extra = r[8]?.uppercased(), extra.contains("GENERATED") && !extra.contains("DEFAULT_GENERATED") {
                d.generated.append(colName)
                continue
            }
            let json = checks.contains { $0.replacingOccurrences(of: " ", with: "") == "json_valid(`\(colName)`)" }
            let type = json ? .json : columnType(dataType: dataType, columnType: colType, precision: r[4].flatMap { Int($0) },
                                                  scale: r[5].flatMap { Int($0) }, charset: r[6])
            d.schema.columns.append(ColumnSchema(name: colName, type: type, nullable: r[3] == "YES"))
            if let collation = r[7] { d.collations[colName] = collation }
        }
        return d
    }

    /// Our type for a MySQL column type (as information_schema spells it).
    static func columnType(dataType: String, columnType: String, precision: Int?, scale: Int?, charset: String?) -> ColumnType {
        switch dataType {
        case "tinyint" where columnType.hasPrefix("tinyint(1)"): return .bool
        case "bool", "boolean": return .bool
        case "bigint" where columnType.contains("unsigned"): return .decimal(precision: 20, scale: 0)
        case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bit": return .int64
        case "float", "double", "real": return .float64
        case "decimal", "numeric": return .decimal(precision: precision ?? ColumnType.maxDecimalPrecision, scale: scale)
        case "date": return .date
        case "datetime", "timestamp": return .timestamp
        case "time": return .time
        case "json": return .json
        case "uuid": return .uuid
        case "char" where columnType == "char(36)" && charset == "ascii": return .uuid
        case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob": return .bytes
        default: return .text
        }
    }
}
