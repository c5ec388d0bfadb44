public import SluiceCore
import SluiceFormats
public import SluiceConfig

/// What a user asked for: files, an entity, and any overrides from the command line or
/// an API request. Nil fields fall back to the entity's declaration, then to inference.
public struct LoadRequest: Sendable {
    public var files: [String]
    public var entity: String
    public var mode: WriteMode?
    public var format: SourceFormat?
    public var key: [String]?
    public var table: String?
    public var csv: CSVDialect?
    /// Abort and roll back once more rows than this are rejected. Nil: no limit.
    public var maxRejects: Int64?
    /// Read and check everything, write nothing.
    public var dryRun = false
    public var limits = ReadLimits()
    /// Rows sampled to infer a schema.
    public var sampleRows = SchemaSampler.defaultRows
    /// Use exactly this schema (a chunk of a larger load uses its parent's).
    public var schema: TableSchema?
    /// Read only this part of the (single) file.
    public var chunk: FileChunk?
    /// Threads parsing each file: more than one cut a big CSV or NDJSON file at line
    /// boundaries and parse its pieces at once (the sink still takes them in the file's order).
    public var parseThreads = 1
    /// Statements run in the load's transaction after the rows are written (`sql` steps).
    public var afterSQL: [String] = []
    /// Rows a pipeline is producing, loaded instead of files.
    public var feed: RowFeed?
    /// The target database session's time zone (PostgreSQL's `TimeZone`), for naive
    /// timestamps into timestamptz columns when the entity names none.
    public var sessionTimeZone: String?
    /// Whether an entity that is neither declared nor an existing table may be created when
    /// `sluice.yml` declares others. False catches a misspelt `--into`.
    public var create = true

    public init(files: [String], entity: String) {
        self.files = files
        self.entity = entity
    }

    /// A load of the rows `feed` produces.
    public init(feed: RowFeed, entity: String) {
        self.files = []
        self.entity = entity
        self.feed = feed
    }
}

/// A request resolved against `sluice.yml` and the target: the exact schema, key and
/// mode the load will use, and the inspected input files.
public struct LoadPlan: Sendable {
    public var entity: Entity
    public var mode: WriteMode
    public var files: [InputFile]
    /// True when the columns were inferred from the first file rather than declared.
    public var inferred: Bool
    public var request: LoadRequest
    /// The zone of naive timestamps for timestamptz columns (nil: UTC).
    public var naiveZone: NaiveTimeZone? {
        (entity.timeZone ?? request.sessionTimeZone).flatMap(NaiveTimeZone.init)
    }
}

/// Resolves requests into plans. Pure except for reading the files' first bytes and the
/// target's catalog.
public enum LoadPlanner {
    /// Plans against a target whose catalog is asynchronous: the table's schema is read
    /// first (`lookup`), then the files are inspected on a thread of their own.
    public static func plan(_ request: LoadRequest, config: SluiceConfig,
                            lookup: (String) async throws(SluiceError) -> TableSchema?) async throws(SluiceError) -> LoadPlan {
        let table = try table(for: request, config: config)
        let known = KnownTable(name: table, schema: try await lookup(table))
        return try await runOnThread { Result { () throws(SluiceError) in try plan(request, config: config, target: known) } }.get()
    }

    /// The table a request loads into (the entity's, or the one asked for), validated.
    public static func table(for request: LoadRequest, config: SluiceConfig) throws(SluiceError) -> String {
        let table = request.table ?? config.entity(request.entity)?.table ?? request.entity
        try SQLIdentifier.validate(table)
        return table
    }

    public static func plan(_ request: LoadRequest, config: SluiceConfig, target: (any TableCatalog)?) throws(SluiceError) -> LoadPlan {
        if request.files.isEmpty && request.feed == nil { throw SluiceError(.invalidArgument, "no input files") }
        let declared = config.entity(request.entity)
        var entity = declared ?? Entity(name: request.entity, schema: TableSchema(columns: []))
        if let t = request.table { entity.table = t }
        if let d = request.csv { entity.csv = d }
        _ = try QualifiedName.target(entity.table)
        var files = request.feed.map { [InputFile(feed: $0)] } ?? []
        for path in request.files { files.append(try InputFile.inspect(path: path, format: request.format ?? entity.format)) }
        // Nobody declared a delimiter: the first file's name or lines say which (`;` from
        // Excel in Brazil, tabs in `.tsv`).
        if entity.csv.sniffDelimiter, let d = files.first?.sniffedDelimiter, d != entity.csv.quote { entity.csv.delimiter = d }
        if entity.csv.sniffEncoding, entity.csv.encoding == nil, let e = files.first?.sniffedEncoding { entity.csv.encoding = e }
        // Dates written day first (`25/12/2024`), when a day over 12 proves it; never guessed.
        // (Not for declared columns none of which is a date: nothing would read the format.)
        if entity.csv.sniffDates, !entity.csv.localDates, entity.schema.columns.isEmpty || entity.schema.columns.contains(where: \.type.isDateOrTime),
           let sniff = try files.first?.sniffDates(dialect: entity.csv, rows: request.sampleRows, limits: request.limits), sniff.dayFirst {
            entity.csv.dateFormat = .dayFirst
            entity.csv.timestampFormat = .dayFirstTime
        }
        let existing = try target?.schema(of: entity.table)
        if declared == nil, existing == nil, !request.create, !config.entities.isEmpty, request.schema == nil, request.table == nil {
            let known = Array(config.entities.keys) + Array(config.mappings.keys)
            throw SluiceError(.notFound, "'\(request.entity)' is neither an entity of \(config.path ?? "sluice.yml") nor an existing table\(Suggestion.hint(for: request.entity, in: known)) (declared: \(known.sorted().joined(separator: ", "))); pass --create to make a new table")
        }

        var key = request.key ?? entity.schema.primaryKey
        let keyFromTable = key.isEmpty && existing != nil
        if keyFromTable, let existing { key = existing.primaryKey }
        let askedMode = request.mode ?? entity.mode
        var mode = askedMode ?? (key.isEmpty ? .append : .merge)

        var inferred = false
        var columns = entity.schema.columns
        if let given = request.schema {
            entity.schema = given
            try entity.validate(mode: mode)
            return LoadPlan(entity: entity, mode: mode, files: files, inferred: false, request: request)
        }
        if columns.isEmpty {
            inferred = true
            let first = files[0]
            var exclude: Set<String> = []
            if mode == .merge { exclude.insert(entity.opColumn) }
            let sampled = try first.inferColumns(dialect: entity.csv, rows: request.sampleRows, exclude: exclude, limits: request.limits)
            if sampled.isEmpty { throw SluiceError(.invalidSchema, "found no columns to load", at: SourceLocation(file: first.path)) }
            if sampled.count == 1, first.format == .csv, let other = CSVDialect.candidates.first(where: { $0 != entity.csv.delimiter && sampled[0].name.utf8.contains($0) }) {
                let shown = other == 0x09 ? "tab" : String(UnicodeScalar(other))
                throw SluiceError(.invalidSchema, "the header '\(sampled[0].name.prefix(60))' reads as one column; it looks separated by '\(shown)': pass --delimiter '\(shown)' (or csv: {delimiter: ...} on the entity)",
                                  at: SourceLocation(file: first.path))
            }
            columns = sampled
            if let existing, mode != .replace {
                // The table's own types win; a file column the table lacks is added when the
                // entity evolves, else an error.
                var extra: [String] = []
                columns = sampled.compactMap { c in
                    guard var e = existing.column(named: c.name) else {
                        if entity.evolve { return c }
                        extra.append(c.name)
                        return nil
                    }
                    e.source = c.source
                    // An unbounded `numeric` takes more than 38 digits, which exact decimals
                    // cannot hold: its values travel as text and the database checks them
                    // (not for a key, and not when the file writes numbers its own way).
                    if e.nativeType == "numeric", !key.contains(e.name), !entity.csv.localNumbers { e.type = .text }
                    return e
                }
                if !extra.isEmpty {
                    throw SluiceError(.invalidSchema, "table '\(entity.table)' has no column \(extra.map { "'\($0)'" }.joined(separator: ", ")); set schema_changes: evolve on the entity, declare it in sluice.yml, or use --mode replace",
                                      at: SourceLocation(file: first.path))
                }
            }
        }
        if keyFromTable, let existing, !key.allSatisfy({ k in columns.contains { $0.name == k } }) {
            // The table's key is not in the file: the database fills it (identity, serial,
            // default). Appending works; matching rows needs a natural key.
            if askedMode == .merge {
                let unique = existing.uniqueKeys.filter { u in u.allSatisfy { k in columns.contains { $0.name == k } } }
                let hint = unique.isEmpty ? "" : " or merge on a UNIQUE key with --key \(unique[0].joined(separator: ","))"
                throw SluiceError(.invalidSchema, "table '\(entity.table)' has primary key (\(key.joined(separator: ", "))), which the file lacks (the database fills it): load with --mode append\(hint)")
            }
            key = []
            if askedMode == nil { mode = .append }
        }
        entity.schema = TableSchema(columns: columns, primaryKey: key).normalized()
        do throws(SluiceError) {
            try entity.validate(mode: mode)
        } catch {
            throw inferred ? error.inFile(files[0].path) : error
        }
        return LoadPlan(entity: entity, mode: mode, files: files, inferred: inferred, request: request)
    }
}

/// A catalog that already holds the one table a plan asks about (read before planning).
struct KnownTable: TableCatalog, Sendable {
    let name: String
    let schema: TableSchema?
    func schema(of table: String) throws(SluiceError) -> TableSchema? { table == name ? schema : nil }
}
