/// A named load target: a table, its columns and key, how to write, and how to read its
/// files. Declared in `sluice.yml` or inferred from a file.
public struct Entity: Sendable, Hashable {
    public var name: String
    public var table: String
    public var schema: TableSchema
    /// Write mode when the command line does not give one. Nil: merge with a key, else append.
    public var mode: WriteMode?
    /// Source field that says insert/update vs delete in merge mode. The default is `op`.
    public var opColumn: String
    public var format: SourceFormat?
    public var csv: CSVDialect
    /// A file with columns the table lacks: add them (`evolve`) or refuse the load (`freeze`,
    /// the default).
    public var evolve: Bool
    /// NaN in a float column: NULL (`nan: null`) instead of a rejected row (the default,
    /// since SQLite and MySQL cannot store NaN).
    public var nanAsNull = false
    /// The zone of timestamps written without an offset, for timestamptz columns
    /// (`timezone: America/Sao_Paulo`). Nil: the database session's, else UTC.
    public var timeZone: String?
    /// How a text file's lines make records (`record:`, with `format: text`).
    public var textRecords = TextRecords.line

    public init(name: String, table: String? = nil, schema: TableSchema, mode: WriteMode? = nil,
                opColumn: String = "op", format: SourceFormat? = nil, csv: CSVDialect = CSVDialect(), evolve: Bool = false) {
        self.name = name
        self.table = table ?? name
        self.schema = schema
        self.mode = mode
        self.opColumn = opColumn
        self.format = format
        self.csv = csv
        self.evolve = evolve
    }

    /// The mode used when none is asked for.
    public var effectiveMode: WriteMode { mode ?? (schema.primaryKey.isEmpty ? .append : .merge) }

    /// Pure checks, before any I/O: names, key, and that merge has a key.
    public func validate(mode: WriteMode) throws(SluiceError) {
        try SQLIdentifier.validate(table)
        try schema.validate()
        if mode == .merge && schema.primaryKey.isEmpty {
            throw SluiceError(.invalidSchema, "entity '\(name)': merge needs a primary key (declare primary_key in sluice.yml or pass --key)")
        }
        if schema.column(named: opColumn) != nil && mode == .merge {
            throw SluiceError(.invalidSchema, "entity '\(name)': op column '\(opColumn)' is also a table column; set op_column to another field")
        }
    }
}
