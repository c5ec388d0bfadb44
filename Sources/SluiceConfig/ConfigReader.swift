public import SluiceCore
import Yams
public import Foundation

/// Reads `sluice.yml`. Every mistake is reported with the file, line and column of the
/// offending node, and unknown keys are errors (a typo must not be silently ignored).
///
/// ```yaml
/// database: sluice.db
/// entities:
///   registros:
///     table: registros          # default: the entity name
///     primary_key: [id]
///     mode: merge               # append | replace | merge
///     op_column: op             # D in this field deletes the key (merge)
///     format: csv               # csv | ndjson | json (default: from the file name)
///     csv: {delimiter: ",", quote: "\"", null: "", header: true}
///     columns:
///       - {name: id, type: int64, nullable: false}
///       - {name: city, type: text, from: customer.address.city}
/// ```
public enum ConfigReader {
    /// Reads the file at `path`.
    public static func load(path: String) throws(SluiceError) -> SluiceConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SluiceError(.notFound, "cannot read configuration file '\(path)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SluiceError(.invalidConfig, "configuration file '\(path)' is not UTF-8")
        }
        var config = try parse(text, fileName: path)
        // Relative paths in the file are relative to the file, not to the working directory.
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            func rel(_ p: String) -> String { p.hasPrefix("/") ? p : (dir as NSString).appendingPathComponent(p) }
            config.server.uploadDir = config.server.uploadDir.map(rel)
            config.server.fileRoots = config.server.fileRoots.map(rel)
            func relDB(_ p: String) -> String { p.hasPrefix("/") || p.contains("://") ? p : (dir as NSString).appendingPathComponent(p) }
            config.database = relDB(config.database)
            config.control = config.control.map(relDB)
            config.target = config.target.map(relDB)
            if !config.stateDir.hasPrefix("/") { config.stateDir = (dir as NSString).appendingPathComponent(config.stateDir) }
        }
        return config
    }

    public static func parse(_ text: String, fileName: String = "sluice.yml",
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws(SluiceError) -> SluiceConfig {
        let text = try EnvInterpolation.expand(text, environment: environment, fileName: fileName)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw SluiceError(.invalidConfig, "not valid YAML: \(Self.describe(e))", at: SourceLocation(file: fileName))
        } catch {
            throw SluiceError(.invalidConfig, "not valid YAML", at: SourceLocation(file: fileName))
        }
        var config = SluiceConfig()
        config.path = fileName
        guard let root else { return config }
        let r = NodeReader(file: fileName)
        let top = try r.mapping(root, "the top level", allowed: ["database", "control", "target", "target_schema", "state_dir", "storage", "entities", "server", "worker", "exports", "s3", "watches", "mappings", "pipelines", "parquet", "retention"])
        if let ws = top["watches"] {
            guard case .mapping(let m) = ws else { throw r.error(ws, "watches must be a mapping of name to watch") }
            for (k, v) in m {
                let name = try r.string(k, "watch name")
                config.watches[name] = try readWatch(name: name, v, r)
            }
        }
        if let n = top["s3"] {
            let m = try r.mapping(n, "s3", allowed: ["endpoint", "region", "path_style"])
            if let v = m["endpoint"] { config.s3.endpoint = try r.string(v, "s3.endpoint") }
            if let v = m["region"] { config.s3.region = try r.string(v, "s3.region") }
            if let v = m["path_style"] { config.s3.pathStyle = try r.bool(v, "s3.path_style") }
        }
        if let n = top["retention"] {
            let m = try r.mapping(n, "retention", allowed: ["uploads_days", "work_days", "jobs_days", "runs_days", "loads_days", "orphans_days", "export_ranges"])
            if let v = m["export_ranges"] { config.retention.exportRanges = try r.bool(v, "retention.export_ranges") }
            func days(_ key: String) throws(SluiceError) -> Double? { try m[key].map { (v) throws(SluiceError) in try r.number(v, "retention.\(key)", allowZero: true) } }
            if let d = try days("uploads_days") { config.retention.uploadsDays = d }
            if let d = try days("work_days") { config.retention.workDays = d }
            if let d = try days("jobs_days") { config.retention.jobsDays = d }
            if let d = try days("runs_days") { config.retention.runsDays = d }
            if let d = try days("loads_days") { config.retention.loadsDays = d }
            if let d = try days("orphans_days") { config.retention.orphansDays = d }
        }
        if let n = top["parquet"] {
            let m = try r.mapping(n, "parquet", allowed: ["compat", "compression", "row_group_rows"])
            if let v = m["compat"] {
                let c = try r.string(v, "parquet.compat").lowercased()
                guard ParquetSettings.compats.contains(c) else { throw r.error(v, "parquet.compat is wide (or spark) or exact, not '\(c)'") }
                config.parquet.compat = c
            }
            if let v = m["compression"] {
                let c = try r.string(v, "parquet.compression").lowercased()
                guard ParquetSettings.compressions.contains(c) else { throw r.error(v, "parquet.compression is none, snappy, gzip or zstd, not '\(c)'") }
                config.parquet.compression = c
            }
            if let v = m["row_group_rows"] {
                config.parquet.rowGroupRows = max(1, Int(try r.number(v, "parquet.row_group_rows")))
            }
        }
        if let s = top["server"] { config.server = try readServer(s, r) }
        if let w = top["worker"] { config.worker = try readWorker(w, r) }
        if let db = top["database"] { config.database = try r.string(db, "database") }
        if let db = top["control"] { config.control = try r.string(db, "control") }
        if let db = top["target"] { config.target = try r.string(db, "target") }
        if let s = top["target_schema"] { config.targetSchema = try r.string(s, "target_schema") }
        if let sd = top["state_dir"] { config.stateDir = try r.string(sd, "state_dir") }
        if let st = top["storage"] { config.storage = try r.string(st, "storage") }
        if let ents = top["entities"] {
            guard case .mapping(let m) = ents else { throw r.error(ents, "entities must be a mapping of name to entity") }
            for (k, v) in m {
                let name = try r.string(k, "entity name")
                config.entities[name] = try readEntity(name: name, v, r)
            }
        }
        if let ms = top["mappings"] {
            guard case .mapping(let m) = ms else { throw r.error(ms, "mappings must be a mapping of name to targets") }
            for (k, v) in m {
                let name = try r.string(k, "mapping name")
                config.mappings[name] = try readMapping(name: name, v, r, entities: config.entities)
            }
        }
        if let ps = top["pipelines"] {
            guard case .mapping(let m) = ps else { throw r.error(ps, "pipelines must be a mapping of name to pipeline") }
            var afterNodes: [String: Node] = [:]
            for (k, v) in m {
                let name = try r.string(k, "pipeline name")
                config.pipelines[name] = try readPipeline(name: name, v, r)
                if case .mapping(let pm) = v, let a = pm.first(where: { $0.key.string == "after" })?.value { afterNodes[name] = a }
            }
            // `after:` must name pipelines and must not loop.
            let graph = config.pipelines.mapValues(\.after)
            for (name, deps) in graph.sorted(by: { $0.key < $1.key }) {
                for d in deps where graph[d] == nil {
                    throw r.error(afterNodes[name] ?? ps, "pipelines.\(name).after: '\(d)' is not a pipeline")
                }
            }
            do {
                _ = try PipelineDAG.order(graph)
            } catch {
                let first = graph.keys.sorted().first { error.message.contains($0) }
                throw r.error(first.flatMap { afterNodes[$0] } ?? ps, error.message)
            }
        }
        if let ex = top["exports"] {
            guard case .mapping(let m) = ex else { throw r.error(ex, "exports must be a mapping of name to export") }
            for (k, v) in m {
                let name = try r.string(k, "export name")
                config.exports[name] = try readExport(name: name, v, r)
            }
        }
        // A pipeline's `export:` must name a declared export.
        if case .mapping(let pm)? = top["pipelines"] {
            for (k, v) in pm {
                guard case .mapping(let fields) = v, let n = fields.first(where: { $0.key.string == "export" })?.value,
                      let name = n.string, config.exports[name] == nil else { continue }
                throw r.error(n, "pipelines.\(k.string ?? "?").export: '\(name)' is not declared under exports: (declared: \(config.exports.keys.sorted().joined(separator: ", ")))")
            }
        }
        return config
    }

    static func readExport(name: String, _ node: Node, _ r: NodeReader) throws(SluiceError) -> ExportSettings {
        let p = "exports.\(name)"
        let m = try r.mapping(node, p, allowed: ["from", "query", "where", "resend_changed", "key", "to", "batch_size", "format", "concurrency", "field", "raw_body", "form",
                                                 "headers", "token_env", "gzip", "rate", "rows_per_second", "max_attempts", "timeout", "ledger"])
        var e = ExportSettings()
        func positive(_ key: String) throws(SluiceError) -> Double? {
            guard let n = m[key] else { return nil }
            return try r.number(n, "\(p).\(key)")
        }
        func texts(_ key: String) throws(SluiceError) -> [String: String] {
            guard let n = m[key] else { return [:] }
            guard case .mapping(let mm) = n else { throw r.error(n, "\(p).\(key) must be a mapping of name to value") }
            var out: [String: String] = [:]
            for (k, v) in mm { out[try r.string(k, "\(p).\(key)")] = try r.string(v, "\(p).\(key)") }
            return out
        }
        if let n = m["from"] { e.from = try r.string(n, "\(p).from") }
        if let n = m["query"] { e.query = try r.string(n, "\(p).query") }
        if e.from != nil && e.query != nil, let n = m["query"] { throw r.error(n, "\(p): give `from` (a table) or `query`, not both") }
        if let n = m["where"] { e.filter = try r.string(n, "\(p).where") }
        if let n = m["resend_changed"] { e.resendChanged = try r.bool(n, "\(p).resend_changed") }
        if let n = m["key"] { e.key = try r.string(n, "\(p).key") }
        if let n = m["to"] { e.to = try r.string(n, "\(p).to") }
        if let n = m["format"] {
            let f = try r.string(n, "\(p).format")
            guard ["csv", "ndjson", "parquet"].contains(f) else { throw r.error(n, "\(p).format: unknown format '\(f)' (csv, ndjson or parquet)") }
            e.format = f
        }
        if let n = m["field"] { e.field = try r.string(n, "\(p).field") }
        if let n = m["raw_body"] { e.rawBody = try r.bool(n, "\(p).raw_body") }
        if let n = m["gzip"] { e.gzip = try r.bool(n, "\(p).gzip") }
        if let n = m["token_env"] { e.tokenEnv = try r.string(n, "\(p).token_env") }
        if let n = m["ledger"] {
            let l = try r.string(n, "\(p).ledger")
            guard l.hasPrefix("delta:") else { throw r.error(n, "\(p).ledger: a Delta table, delta:PATH (the database keeps the ledger otherwise)") }
            e.ledger = l
        }
        e.form = try texts("form")
        e.headers = try texts("headers")
        e.batchSize = try positive("batch_size").map { Int($0) }
        e.concurrency = try positive("concurrency").map { Int($0) }
        e.rate = try positive("rate")
        e.rowsPerSecond = try positive("rows_per_second")
        e.maxAttempts = try positive("max_attempts").map { Int($0) }
        e.timeout = try positive("timeout")
        return e
    }

    /// `NAME: {ENTITY: {explode: path, columns: {column: path, ...}}, ...}`, in the file's order.
    static func readMapping(name: String, _ node: Node, _ r: NodeReader, entities: [String: Entity]) throws(SluiceError) -> JSONMapping {
        let p = "mappings.\(name)"
        guard case .mapping(let targets) = node, !targets.isEmpty else { throw r.error(node, "\(p) must map entity names to their columns") }
        var out: [JSONMapping.Target] = []
        for (k, v) in targets {
            let entity = try r.string(k, p)
            let tp = "\(p).\(entity)"
            guard entities[entity] != nil else {
                throw r.error(k, "\(tp): entity '\(entity)' is not declared under entities: (declare it with its primary_key)")
            }
            let m = try r.mapping(v, tp, allowed: ["explode", "columns"])
            guard let cols = m["columns"], case .mapping(let cm) = cols, !cm.isEmpty else {
                throw r.error(v, "\(tp).columns must map column names to field paths")
            }
            var columns: [(name: String, source: JSONMapping.Source)] = []
            for (ck, cv) in cm {
                let column = try r.string(ck, "\(tp).columns")
                do {
                    columns.append((column, try JSONMapping.source(try r.string(cv, "\(tp).columns.\(column)"))))
                } catch {
                    throw r.error(cv, "\(tp).columns.\(column): \(error.message)")
                }
            }
            let explode = try m["explode"].map { (n) throws(SluiceError) in try r.string(n, "\(tp).explode").split(separator: ".").map(String.init) }
            out.append(JSONMapping.Target(entity: entity, explode: explode, columns: columns))
        }
        return JSONMapping(name: name, targets: out)
    }

    /// `NAME: {source, glob, into, mode, steps: [{select|rename|cast|filter|derive|dedupe: ...}]}`;
    /// every expression is parsed and the steps are checked in order, each error at its line.
    static func readPipeline(name: String, _ node: Node, _ r: NodeReader) throws(SluiceError) -> Pipeline {
        let p = "pipelines.\(name)"
        let m = try r.mapping(node, p, allowed: ["source", "glob", "into", "mode", "steps", "schedule", "timezone", "start_date", "record", "after", "after_load",
                                                 "staged", "batch_rows", "retries", "where", "export"])
        guard let src = m["source"], let into = m["into"] else { throw r.error(node, "\(p) needs a source and an entity (into)") }
        var mode: WriteMode? = nil
        if let n = m["mode"] {
            let v = try r.string(n, "\(p).mode")
            guard let parsed = WriteMode(rawValue: v) else { throw r.error(n, "\(p).mode: unknown mode '\(v)' (append, replace or merge)") }
            mode = parsed
        }
        var steps: [PipelineStep] = []
        var stepNodes: [Node] = []
        var sql: [String] = []
        if let n = m["steps"] {
            guard case .sequence(let items) = n else { throw r.error(n, "\(p).steps must be a list of steps") }
            for (i, item) in items.enumerated() {
                let sp = "\(p).steps[\(i)]"
                guard case .mapping(let one) = item, one.count == 1, let (kn, v) = one.first else {
                    throw r.error(item, "\(sp) must be one of select, rename, cast, filter, derive, dedupe with its argument")
                }
                let kind = try r.string(kn, sp)
                if kind == "sql" {
                    sql.append(try r.string(v, "\(sp).sql"))
                    continue
                }
                if !sql.isEmpty { throw r.error(kn, "\(sp): a \(kind) step cannot follow a sql step (sql runs in the database after the rows are loaded)") }
                func names() throws(SluiceError) -> [String] { try r.strings(v, "\(sp).\(kind)") }
                func pairs() throws(SluiceError) -> [(Node, String, Node)] {
                    guard case .mapping(let pm) = v, !pm.isEmpty else { throw r.error(v, "\(sp).\(kind) must map field names to values") }
                    var out: [(Node, String, Node)] = []
                    for (a, b) in pm { out.append((a, try r.string(a, "\(sp).\(kind)"), b)) }
                    return out
                }
                func expression(_ n: Node, _ what: String) throws(SluiceError) -> Expr {
                    let text = try r.string(n, what)
                    do { return try ExprParser.parse(text) } catch { throw r.error(n, "\(what): \(error.description) in '\(text)'") }
                }
                switch kind {
                case "select": steps.append(.select(try names()))
                case "dedupe": steps.append(.dedupe(try names()))
                case "rename": steps.append(.rename(try pairs().map { (_, a, b) throws(SluiceError) in Pair(a, try r.string(b, "\(sp).rename.\(a)")) }))
                case "cast":
                    steps.append(.cast(try pairs().map { (_, a, b) throws(SluiceError) in
                        let t = try r.string(b, "\(sp).cast.\(a)")
                        guard let c = CastType(rawValue: t) else { throw r.error(b, "\(sp).cast.\(a): unknown type '\(t)' (int, float, text or bool)") }
                        return Pair(a, c)
                    }))
                case "filter": steps.append(.filter(try expression(v, "\(sp).filter")))
                case "derive": steps.append(.derive(try pairs().map { (_, a, b) throws(SluiceError) in Pair(a, try expression(b, "\(sp).derive.\(a)")) }))
                case "enrich": steps.append(.enrich(try readEnrich(v, "\(sp).enrich", r)))
                case "explode": steps.append(.explode(try r.string(v, "\(sp).explode")))
                case "flatten": steps.append(.flatten(try r.string(v, "\(sp).flatten")))
                case "parse":
                    // parse: {line: 'pattern'} or {line: ['pattern', 'pattern']}
                    guard case .mapping(let pm) = v, pm.count == 1, let (fn, pn) = pm.first else {
                        throw r.error(v, "\(sp).parse maps one field to a pattern or a list of patterns")
                    }
                    let field = try r.string(fn, "\(sp).parse")
                    let texts: [String]
                    if case .sequence = pn { texts = try r.strings(pn, "\(sp).parse.\(field)") } else { texts = [try r.string(pn, "\(sp).parse.\(field)")] }
                    var patterns: [LinearRegex] = []
                    for t in texts {
                        do { patterns.append(try LinearRegex(t)) } catch { throw r.error(pn, "\(sp).parse.\(field): \(error.message)") }
                    }
                    guard !patterns.isEmpty else { throw r.error(pn, "\(sp).parse.\(field) needs a pattern") }
                    steps.append(.parse(field: field, patterns: patterns))
                default: throw r.error(kn, "\(sp): unknown step '\(kind)' (select, rename, cast, filter, derive, dedupe, enrich, explode, flatten, parse, sql)")
                }
                stepNodes.append(v)
            }
        }
        do {
            _ = try Pipeline.check(steps)
        } catch {
            throw r.error(stepNodes[error.step], "\(p).steps[\(error.step)] (\(steps[error.step].kind)): \(error.message)")
        }
        var pipeline = Pipeline(name: name, source: try r.string(src, "\(p).source"), glob: try m["glob"].map { (n) throws(SluiceError) in try r.string(n, "\(p).glob") },
                                steps: steps, into: try r.string(into, "\(p).into"), mode: mode)
        if pipeline.glob == nil, let (folder, glob) = Glob.split(location: pipeline.source) {
            (pipeline.source, pipeline.glob) = (folder, glob)  // `s3://bucket/in/*.csv`: the folder and a pattern in it
        }
        var zone = TimeZone(identifier: "UTC")!
        if let n = m["timezone"] {
            let z = try r.string(n, "\(p).timezone")
            guard let tz = TimeZone(identifier: z) else { throw r.error(n, "\(p).timezone: unknown time zone '\(z)' (e.g. America/Sao_Paulo)") }
            zone = tz
            pipeline.timeZone = z
        }
        if let n = m["schedule"] {
            let text = try r.string(n, "\(p).schedule")
            do { _ = try CronSchedule(text, timeZone: zone) } catch { throw r.error(n, "\(p).schedule: \(error.message)") }
            pipeline.schedule = text
        }
        if let n = m["record"] { pipeline.textRecords = try readRecords(n, "\(p).record", r) }
        if let n = m["start_date"] {
            let text = try r.string(n, "\(p).start_date")
            let f = ISO8601DateFormatter()
            f.timeZone = zone
            var date = f.date(from: text)
            if date == nil { f.formatOptions = [.withFullDate]; date = f.date(from: text) }
            guard let date else { throw r.error(n, "\(p).start_date: '\(text)' is not a date (2026-11-01 or 2026-11-01T06:00:00Z)") }
            pipeline.startDate = date
        }
        if let n = m["after"] { pipeline.after = try r.strings(n, "\(p).after") }
        pipeline.sql = sql
        if let n = m["where"] {
            let text = try r.string(n, "\(p).where")
            if pipeline.source.hasPrefix("delta:") {
                // A Delta source: a condition of the steps' language, which also skips files.
                do { _ = try ExprParser.parse(text) } catch { throw r.error(n, "\(p).where: \(error)") }
            } else {
                guard pipeline.sourceTable != nil else { throw r.error(n, "\(p).where filters a table source (source: table:NAME) or a Delta table (source: delta:PATH)") }
                guard !text.contains(";") else { throw r.error(n, "\(p).where is one SQL condition (no ';')") }
            }
            pipeline.sourceFilter = text
        }
        if let table = pipeline.sourceTable {
            do { try SQLIdentifier.validate(table) } catch { throw r.error(src, "\(p).source: \((error as? SluiceError)?.message ?? "\(error)")") }
        }
        if let n = m["export"] { pipeline.export = try r.string(n, "\(p).export") }
        if let n = m["staged"] { pipeline.staged = try r.bool(n, "\(p).staged") }
        for (key, apply) in [("batch_rows", { (v: Int) in pipeline.batchRows = v }), ("retries", { (v: Int) in pipeline.maxAttempts = v })] {
            guard let n = m[key] else { continue }
            guard let v = n.float, v >= 1, v == v.rounded(), v < 1e7 else { throw r.error(n, "\(p).\(key) must be a positive whole number") }
            apply(Int(v))
        }
        if let n = m["after_load"] {
            switch n {
            case .scalar:
                let v = try r.string(n, "\(p).after_load")
                guard v == "delete" || v == "keep" else { throw r.error(n, "\(p).after_load: '\(v)' is not keep, delete or {move_to: folder}") }
                pipeline.afterLoad = v == "delete" ? .delete : .keep
            default:
                let mm = try r.mapping(n, "\(p).after_load", allowed: ["move_to"])
                guard let to = mm["move_to"] else { throw r.error(n, "\(p).after_load needs move_to: folder") }
                let folder = try r.string(to, "\(p).after_load.move_to")
                pipeline.afterLoad = .move(folder.hasSuffix("/") ? folder : folder + "/")
            }
        }
        return pipeline
    }

    static func readEnrich(_ node: Node, _ p: String, _ r: NodeReader) throws(SluiceError) -> EnrichSpec {
        let m = try r.mapping(node, p, allowed: ["url", "adapter", "key", "fields", "cache_ttl", "concurrency", "rate", "max_attempts",
                                                 "timeout", "on_error", "name"])
        guard let urlNode = m["url"] else { throw r.error(node, "\(p) needs a url (with {field} placeholders)") }
        let url = try r.string(urlNode, "\(p).url")
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw r.error(urlNode, "\(p).url must be an http(s) URL") }
        var fields: [Pair<String>] = []
        if let a = m["adapter"] {
            let name = try r.string(a, "\(p).adapter")
            guard name == "nominatim" else { throw r.error(a, "\(p).adapter: unknown adapter '\(name)' (nominatim)") }
            fields = EnrichSpec.nominatimFields
        }
        if let f = m["fields"] {
            guard case .mapping(let fm) = f else { throw r.error(f, "\(p).fields must map new fields to JSON paths in the answer") }
            fields = []
            for (k, v) in fm { fields.append(Pair(try r.string(k, "\(p).fields"), try r.string(v, "\(p).fields"))) }
        }
        guard !fields.isEmpty else { throw r.error(node, "\(p) needs fields (or adapter: nominatim)") }
        let key = try m["key"].map { (n) throws(SluiceError) in try r.strings(n, "\(p).key") } ?? EnrichSpec.templateFields(url)
        let host = URLComponents(string: url)?.host ?? "api"
        var spec = EnrichSpec(url: url, key: key, fields: fields, name: try m["name"].map { (n) throws(SluiceError) in try r.string(n, "\(p).name") } ?? host)
        func number(_ k: String) throws(SluiceError) -> Double? {
            guard let n = m[k] else { return nil }
            return try r.number(n, "\(p).\(k)")
        }
        if let v = try number("cache_ttl") { spec.cacheTTL = v }
        if let v = try number("concurrency") { spec.concurrency = Int(v) }
        spec.rate = try number("rate")
        if let v = try number("max_attempts") { spec.maxAttempts = Int(v) }
        if let v = try number("timeout") { spec.timeout = v }
        if let n = m["on_error"] {
            let v = try r.string(n, "\(p).on_error")
            guard let e = EnrichSpec.OnError(rawValue: v) else { throw r.error(n, "\(p).on_error: '\(v)' is not reject, null or fail") }
            spec.onError = e
        }
        return spec
    }

    static func readWatch(name: String, _ node: Node, _ r: NodeReader) throws(SluiceError) -> WatchSettings {
        let p = "watches.\(name)"
        let m = try r.mapping(node, p, allowed: ["source", "into", "glob", "interval", "min_age", "on_change", "max_files", "max_bytes",
                                                 "watermark", "raw", "format", "mode"])
        var w = WatchSettings()
        func number(_ key: String, allowZero: Bool = false) throws(SluiceError) -> Double? {
            guard let n = m[key] else { return nil }
            return try r.number(n, "\(p).\(key)", allowZero: allowZero)
        }
        if let n = m["source"] { w.source = try r.string(n, "\(p).source") }
        if let n = m["into"] { w.into = try r.string(n, "\(p).into") }
        if let n = m["glob"] { w.glob = try r.string(n, "\(p).glob") }
        if w.glob == nil, let source = w.source, let (folder, glob) = Glob.split(location: source) { (w.source, w.glob) = (folder, glob) }
        if let n = m["raw"] { w.raw = try r.string(n, "\(p).raw") }
        if let n = m["on_change"] {
            let v = try r.string(n, "\(p).on_change")
            guard ["reprocess", "ignore"].contains(v) else { throw r.error(n, "\(p).on_change: '\(v)' is not reprocess or ignore") }
            w.onChange = v
        }
        if let n = m["watermark"] { w.watermark = try r.bool(n, "\(p).watermark") }
        if let n = m["format"] {
            let v = try r.string(n, "\(p).format")
            guard let f = SourceFormat(rawValue: v) else { throw r.error(n, "\(p).format: unknown format '\(v)'") }
            w.format = f
        }
        if let n = m["mode"] {
            let v = try r.string(n, "\(p).mode")
            guard let mode = WriteMode(rawValue: v) else { throw r.error(n, "\(p).mode: unknown write mode '\(v)'") }
            w.mode = mode
        }
        w.interval = try number("interval")
        w.minAge = try number("min_age", allowZero: true)
        w.maxFiles = try number("max_files").map { Int($0) }
        w.maxBytes = try number("max_bytes").map { Int64($0) }
        guard w.source != nil, w.into != nil else { throw r.error(node, "\(p) needs a source and an entity (into)") }
        return w
    }

    static func describe(_ e: YamlError) -> String {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            return "\(context?.text ?? "") \(problem) at line \(mark.line), column \(mark.column)"
        default:
            return "\(e)"
        }
    }

    static func readEntity(name: String, _ node: Node, _ r: NodeReader) throws(SluiceError) -> Entity {
        let path = "entities.\(name)"
        let m = try r.mapping(node, path, allowed: ["table", "primary_key", "mode", "op_column", "format", "csv", "columns", "schema_changes", "nan", "timezone", "record"])
        var columns: [ColumnSchema] = []
        if let cols = m["columns"] { columns = try readColumns(cols, path + ".columns", r) }
        var key: [String] = []
        if let k = m["primary_key"] {
            switch k {
            case .scalar: key = [try r.string(k, path + ".primary_key")]
            case .sequence(let s): key = try s.map { (n) throws(SluiceError) in try r.string(n, path + ".primary_key") }
            default: throw r.error(k, "\(path).primary_key must be a column name or a list of them")
            }
        }
        var mode: WriteMode? = nil
        if let md = m["mode"] {
            let s = try r.string(md, path + ".mode")
            guard let parsed = WriteMode(rawValue: s) else { throw r.error(md, "\(path).mode: unknown mode '\(s)' (append, replace or merge)") }
            mode = parsed
        }
        var format: SourceFormat? = nil
        if let f = m["format"] {
            let s = try r.string(f, path + ".format")
            guard let parsed = SourceFormat(rawValue: s) else { throw r.error(f, "\(path).format: unknown format '\(s)' (csv, ndjson, json, parquet or avro)") }
            format = parsed
        }
        var csv = CSVDialect()
        if let c = m["csv"] { csv = try readCSV(c, path + ".csv", r) }
        let table = try m["table"].map { (n) throws(SluiceError) in try r.string(n, path + ".table") } ?? name
        let opColumn = try m["op_column"].map { (n) throws(SluiceError) in try r.string(n, path + ".op_column") } ?? "op"
        var evolve = false
        if let sc = m["schema_changes"] {
            switch try r.string(sc, path + ".schema_changes") {
            case "evolve": evolve = true
            case "freeze": evolve = false
            default: throw r.error(sc, "\(path).schema_changes must be evolve or freeze")
            }
        }
        var entity = Entity(name: name, table: table, schema: TableSchema(columns: columns, primaryKey: key).normalized(),
                            mode: mode, opColumn: opColumn, format: format, csv: csv, evolve: evolve)
        if let n = m["record"] { entity.textRecords = try readRecords(n, path + ".record", r) }
        if let n = m["timezone"] {
            let z = try r.string(n, path + ".timezone")
            guard NaiveTimeZone(z) != nil else { throw r.error(n, "\(path).timezone: unknown time zone '\(z)' (e.g. America/Sao_Paulo, UTC)") }
            entity.timeZone = z
        }
        if let n = m["nan"] {
            switch try r.string(n, path + ".nan") {
            case "null": entity.nanAsNull = true
            case "reject": entity.nanAsNull = false
            default: throw r.error(n, "\(path).nan must be null or reject")
            }
        }
        do {
            try SQLIdentifier.validate(table)
            if !columns.isEmpty { try entity.schema.validate() }
        } catch {
            throw r.error(node, "\(path): \(error.message)")
        }
        return entity
    }

    static func readServer(_ node: Node, _ r: NodeReader) throws(SluiceError) -> ServerSettings {
        let m = try r.mapping(node, "server", allowed: ["host", "port", "tokens", "uploads", "max_body_mb", "file_roots",
                                                         "http_allowlist", "allow_link_local", "bulk_upload_entity", "s3_buckets", "gcs_buckets", "max_connections", "lease_seconds"])
        var s = ServerSettings()
        if let n = m["host"] { s.host = try r.string(n, "server.host") }
        if let n = m["port"] {
            guard let p = n.int, p > 0, p < 65536 else { throw r.error(n, "server.port must be a port number") }
            s.port = p
        }
        if let n = m["tokens"] { s.tokens = try r.strings(n, "server.tokens") }
        if let n = m["uploads"] { s.uploadDir = try r.string(n, "server.uploads") }
        if let n = m["max_body_mb"] {
            guard let mb = n.int, mb > 0, mb <= 1 << 30 else { throw r.error(n, "server.max_body_mb must be a positive number (at most 2^30)") }
            s.maxBodyBytes = Int64(mb) << 20
        }
        if let n = m["file_roots"] { s.fileRoots = try r.strings(n, "server.file_roots") }
        if let n = m["http_allowlist"] { s.httpAllowlist = try r.strings(n, "server.http_allowlist") }
        if let n = m["allow_link_local"] { s.allowLinkLocal = try r.bool(n, "server.allow_link_local") }
        if let n = m["bulk_upload_entity"] { s.bulkUploadEntity = try r.string(n, "server.bulk_upload_entity") }
        if let n = m["s3_buckets"] { s.s3Buckets = try r.strings(n, "server.s3_buckets") }
        if let n = m["gcs_buckets"] { s.gcsBuckets = try r.strings(n, "server.gcs_buckets") }
        if let n = m["max_connections"] {
            guard let c = n.int, c >= 32, c <= 1 << 20 else { throw r.error(n, "server.max_connections must be a number from 32 to 1048576") }
            s.maxConnections = c
        }
        if let n = m["lease_seconds"] {
            let v = try r.number(n, "server.lease_seconds")
            guard v >= 1, v <= 3_600 else { throw r.error(n, "server.lease_seconds must be from 1 to 3600") }
            s.leaseSeconds = v
        }
        return s
    }

    static func readWorker(_ node: Node, _ r: NodeReader) throws(SluiceError) -> WorkerSettings {
        let m = try r.mapping(node, "worker", allowed: ["concurrency", "lease_seconds", "max_attempts", "poll_seconds", "retry_base_seconds", "chunk_mb", "max_backlog"])
        var w = WorkerSettings()
        func positive(_ key: String) throws(SluiceError) -> Double? {
            guard let n = m[key] else { return nil }
            return try r.number(n, "worker.\(key)")
        }
        if let v = try positive("concurrency") { w.concurrency = Int(v) }
        if let v = try positive("lease_seconds") { w.leaseSeconds = v }
        if let v = try positive("max_attempts") { w.maxAttempts = Int(v) }
        if let v = try positive("poll_seconds") { w.pollSeconds = v }
        if let v = try positive("retry_base_seconds") { w.retryBaseSeconds = v }
        if let v = try positive("chunk_mb") { w.chunkMB = Int(v) }
        if let v = try positive("max_backlog") { w.maxBacklog = Int(v) }
        return w
    }

    static func readColumns(_ node: Node, _ path: String, _ r: NodeReader) throws(SluiceError) -> [ColumnSchema] {
        var out: [ColumnSchema] = []
        switch node {
        case .sequence(let items):
            for (i, item) in items.enumerated() {
                let p = "\(path)[\(i)]"
                let m = try r.mapping(item, p, allowed: ["name", "type", "nullable", "from"])
                guard let n = m["name"] else { throw r.error(item, "\(p): a column needs a name") }
                out.append(try readColumn(name: try r.string(n, p + ".name"), m, item, p, r))
            }
        case .mapping(let pairs):
            // Short form: `name: type` or `name: {type: ..., from: ...}`.
            for (k, v) in pairs {
                let name = try r.string(k, path)
                let p = "\(path).\(name)"
                if case .scalar = v {
                    out.append(ColumnSchema(name: name, type: try r.type(v, p), nullable: true))
                } else {
                    let m = try r.mapping(v, p, allowed: ["type", "nullable", "from"])
                    out.append(try readColumn(name: name, m, v, p, r))
                }
            }
        default:
            throw r.error(node, "\(path) must be a list of columns or a mapping of name to type")
        }
        return out
    }

    static func readColumn(name: String, _ m: [String: Node], _ node: Node, _ p: String, _ r: NodeReader) throws(SluiceError) -> ColumnSchema {
        guard let t = m["type"] else { throw r.error(node, "\(p): column '\(name)' needs a type") }
        let nullable = try m["nullable"].map { (n) throws(SluiceError) in try r.bool(n, p + ".nullable") } ?? true
        let from = try m["from"].map { (n) throws(SluiceError) in try r.string(n, p + ".from") }
        return ColumnSchema(name: name, type: try r.type(t, p + ".type"), nullable: nullable, source: from)
    }

    /// `record:` — `line`, `blank_line`, `{lines: 3}` or `{starts_with: "Latitude:"}`.
    static func readRecords(_ node: Node, _ path: String, _ r: NodeReader) throws(SluiceError) -> TextRecords {
        if case .mapping = node {
            let m = try r.mapping(node, path, allowed: ["lines", "starts_with"])
            guard m.count == 1 else { throw r.error(node, "\(path) is one of lines: N or starts_with: TEXT") }
            if let n = m["lines"] {
                let v = try r.number(n, path + ".lines")
                guard v >= 1, v <= 10_000, v == v.rounded() else { throw r.error(n, "\(path).lines must be a whole number from 1 to 10000") }
                return .lines(Int(v))
            }
            let s = try r.string(m["starts_with"]!, path + ".starts_with")
            guard !s.isEmpty else { throw r.error(node, "\(path).starts_with cannot be empty") }
            return .startsWith(s)
        }
        switch try r.string(node, path) {
        case "line": return .line
        case "blank_line": return .blankLine
        default: throw r.error(node, "\(path) is line, blank_line, {lines: N} or {starts_with: TEXT}")
        }
    }

    static func readCSV(_ node: Node, _ path: String, _ r: NodeReader) throws(SluiceError) -> CSVDialect {
        let m = try r.mapping(node, path, allowed: ["delimiter", "quote", "null", "header", "encoding", "decimal", "thousands", "date_format", "timestamp_format"])
        var d = CSVDialect()
        func byte(_ key: String) throws(SluiceError) -> UInt8? {
            guard let n = m[key] else { return nil }
            var s = try r.string(n, "\(path).\(key)")
            if s == "\\t" || s == "tab" { s = "\t" }
            guard s.utf8.count == 1, let b = s.utf8.first, b != 0x0A, b != 0x0D else {
                throw r.error(n, "\(path).\(key) must be one ASCII character other than a newline")
            }
            return b
        }
        if let b = try byte("delimiter") {
            d.delimiter = b
            d.sniffDelimiter = false
        }
        if let b = try byte("quote") { d.quote = b }
        if let b = try byte("decimal") { d.decimal = b }
        if let b = try byte("thousands") { d.thousands = b }
        if d.thousands == d.decimal { throw r.error(node, "\(path): the decimal and thousands separators must differ") }
        for (key, timestamp) in [("date_format", false), ("timestamp_format", true)] {
            guard let n = m[key] else { continue }
            let f: DateFormat
            do { f = try DateFormat(try r.string(n, "\(path).\(key)")) } catch { throw r.error(n, "\(path).\(key): \(error.message)") }
            if timestamp { d.timestampFormat = f } else { d.dateFormat = f }
            d.sniffDates = false
        }
        if let n = m["null"] { d.nullToken = try r.string(n, path + ".null") }
        if let n = m["header"] { d.header = try r.bool(n, path + ".header") }
        if let n = m["encoding"] {
            d.encoding = try CSVDialect.encoding(named: try r.string(n, path + ".encoding")) { (why) in r.error(n, "\(path).encoding: \(why)") }
            d.sniffEncoding = false
        }
        if d.delimiter == d.quote { throw r.error(node, "\(path): the quote and the delimiter must differ") }
        return d
    }
}

/// Small typed accessors over Yams nodes that fail with the node's position.
struct NodeReader {
    /// The largest number a setting takes: counts, bytes and seconds past it would overflow
    /// the conversions they go through (seconds to nanoseconds in UInt64, Double to Int).
    static let largest = 1e9

    let file: String

    /// A positive (or, with `allowZero`, non-negative) number of at most ``largest``.
    func number(_ node: Node, _ what: String, allowZero: Bool = false) throws(SluiceError) -> Double {
        guard let v = node.float, allowZero ? v >= 0 : v > 0, v <= Self.largest else {
            throw error(node, "\(what) must be a \(allowZero ? "non-negative" : "positive") number (at most 1e9)")
        }
        return v
    }

    func error(_ node: Node, _ message: String) -> SluiceError {
        let line = node.mark.map { Int64($0.line) }
        return SluiceError(.invalidConfig, message + (node.mark.map { " (column \($0.column))" } ?? ""), at: SourceLocation(file: file, line: line))
    }

    func mapping(_ node: Node, _ what: String, allowed: Set<String>) throws(SluiceError) -> [String: Node] {
        guard case .mapping(let m) = node else { throw error(node, "\(what) must be a mapping") }
        var out: [String: Node] = [:]
        for (k, v) in m {
            let key = try string(k, what)
            guard allowed.contains(key) else {
                throw error(k, "\(what): unknown key '\(key)' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            out[key] = v
        }
        return out
    }

    func string(_ node: Node, _ what: String) throws(SluiceError) -> String {
        guard case .scalar(let s) = node else { throw error(node, "\(what) must be a text value") }
        return s.string
    }

    func strings(_ node: Node, _ what: String) throws(SluiceError) -> [String] {
        switch node {
        case .scalar: return [try string(node, what)]
        case .sequence(let items): return try items.map { (n) throws(SluiceError) in try string(n, what) }
        default: throw error(node, "\(what) must be a list of text values")
        }
    }

    func bool(_ node: Node, _ what: String) throws(SluiceError) -> Bool {
        guard let b = node.bool else { throw error(node, "\(what) must be true or false") }
        return b
    }

    func type(_ node: Node, _ what: String) throws(SluiceError) -> ColumnType {
        let s = try string(node, what)
        guard let t = ColumnType(parsing: s) else {
            throw error(node, "\(what): unknown column type '\(s)' (int64, float64, decimal(p,s), bool, text, date, timestamp, timestamptz, uuid, json, bytes)")
        }
        return t
    }
}
