/// A column as declared by an entity or inferred from a file: its target name and type,
/// whether it may be NULL, and which source field feeds it.
public struct ColumnSchema: Sendable, Hashable, Codable {
    public var name: String
    public var type: ColumnType
    public var nullable: Bool
    /// Source field: a CSV header name, a 1-based CSV position when there is no header,
    /// or a dotted JSON path (`customer.address.city`). Nil means the same as `name`.
    public var source: String?
    /// The column's type as the database spells it (`text[]`, `numeric`), when read from a
    /// table's catalog: a sink converts values whose logical type does not say it all.
    public var nativeType: String? = nil

    public init(name: String, type: ColumnType, nullable: Bool = true, source: String? = nil) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.source = source
    }

    /// The field the reader looks up for this column.
    public var sourceField: String { source ?? name }

    enum CodingKeys: String, CodingKey {
        case name, type, nullable
        case source = "from"
    }
}

/// A target table: its columns in order and its primary key (possibly empty).
public struct TableSchema: Sendable, Hashable, Codable {
    public var columns: [ColumnSchema]
    public var primaryKey: [String]
    /// The table's UNIQUE constraints and indexes besides its primary key (read from a
    /// catalog): a load may merge on one of them (`--key email`).
    public var uniqueKeys: [[String]] = []

    enum CodingKeys: String, CodingKey { case columns, primaryKey }

    public init(columns: [ColumnSchema], primaryKey: [String] = []) {
        self.columns = columns
        self.primaryKey = primaryKey
    }

    public func column(named name: String) -> ColumnSchema? { columns.first { $0.name == name } }
    public func index(of name: String) -> Int? { columns.firstIndex { $0.name == name } }

    /// Indices of the primary-key columns, in key order.
    public var keyIndices: [Int] { primaryKey.compactMap { index(of: $0) } }

    public var fields: [RecordBatch.Field] { columns.map { .init(name: $0.name, type: $0.type) } }

    /// Checks names, duplicates and the key. Pure; used before any I/O.
    public func validate() throws(SluiceError) {
        if columns.isEmpty { throw SluiceError(.invalidSchema, "a table needs at least one column") }
        // SQLite compares column names without case, so `flag` and `Flag` are one column there;
        // both backends refuse them alike rather than load into one and fail in the other.
        var seen: [String: String] = [:]
        for c in columns {
            try SQLIdentifier.validate(c.name)
            if let earlier = seen.updateValue(c.name, forKey: c.name.lowercased()) {
                if earlier == c.name { throw SluiceError(.invalidSchema, "column '\(c.name)' is declared twice") }
                throw SluiceError(.invalidSchema, "columns '\(earlier)' and '\(c.name)' differ only in case, and a table cannot hold both; rename one in the file, or declare the columns in sluice.yml with `from:`")
            }
        }
        var keySeen = Set<String>()
        for k in primaryKey {
            guard let c = column(named: k) else {
                throw SluiceError(.invalidSchema, "primary key column '\(k)' is not a column of the table")
            }
            if !keySeen.insert(k).inserted { throw SluiceError(.invalidSchema, "primary key names '\(k)' twice") }
            if c.type == .json || c.type == .float64 {
                throw SluiceError(.invalidSchema, "primary key column '\(k)' has type \(c.type), which cannot be a key")
            }
        }
    }

    /// Whether rows can be matched to this table by `key`: its primary key or one of its
    /// unique keys, in any column order.
    public func accepts(key: [String]) -> Bool {
        let k = Set(key)
        return !key.isEmpty && (k == Set(primaryKey) || uniqueKeys.contains { Set($0) == k })
    }

    /// The same schema with key columns marked NOT NULL.
    public func normalized() -> TableSchema {
        var s = self
        for i in s.columns.indices where primaryKey.contains(s.columns[i].name) { s.columns[i].nullable = false }
        return s
    }
}

/// What a load does to its target table before the rows go in: one rule for every backend,
/// so that SQLite and PostgreSQL (and any next one) agree on when a table is rebuilt.
public enum TablePreparation: Sendable, Equatable {
    /// No table yet: create it from the load's schema.
    case create
    /// Replace into a table of another shape (columns, their types, or the key): drop it and
    /// create the load's, in the load's transaction.
    case rebuild
    /// Replace into a table of the same shape: empty it, in the load's transaction.
    case empty
    /// Keep the table, first adding these columns (`schema_changes: evolve`).
    case keep(adding: [ColumnSchema])

    /// The preparation of `table` (now `existing`, nil when absent) for a load of `load` in
    /// `mode`; or why the table cannot take the load.
    public static func decide(table: String, existing: TableSchema?, load: TableSchema, mode: WriteMode,
                              evolve: Bool) throws(SluiceError) -> TablePreparation {
        _ = try QualifiedName.target(table)
        guard let existing else { return .create }
        if mode == .replace {
            let sameShape = existing.columns.map(\.name) == load.columns.map(\.name)
                && existing.columns.map(\.type) == load.columns.map(\.type) && existing.primaryKey == load.primaryKey
            return sameShape ? .empty : .rebuild
        }
        let missing = load.columns.filter { existing.column(named: $0.name) == nil }
        if !missing.isEmpty && !evolve {
            throw SluiceError(.invalidSchema, "table '\(table)' has no column \(missing.map { "'\($0.name)'" }.joined(separator: ", ")); set schema_changes: evolve on the entity, or use --mode replace")
        }
        if mode == .merge && !existing.accepts(key: load.primaryKey) {
            let unique = existing.uniqueKeys.isEmpty ? "" : " or a UNIQUE key: " + existing.uniqueKeys.map { "(\($0.joined(separator: ", ")))" }.joined(separator: ", ")
            throw SluiceError(.invalidSchema, "table '\(table)' has primary key (\(existing.primaryKey.joined(separator: ", ")))\(unique); the load uses (\(load.primaryKey.joined(separator: ", "))): merge on one of those")
        }
        return .keep(adding: missing)
    }
}
