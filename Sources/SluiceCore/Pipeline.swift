public import Foundation

/// A declared pipeline (`pipelines:` in sluice.yml): where rows come from, the steps they go
/// through, and the entity they load into. Checked as a whole when the config loads.
public struct Pipeline: Sendable, Equatable {
    public var name: String
    /// A folder, a file, or `s3://bucket/prefix/`.
    public var source: String
    public var glob: String?
    public var steps: [PipelineStep]
    /// The entity (or mapping) the rows load into.
    public var into: String
    public var mode: WriteMode?
    /// Cron expression (`schedule:`) and its time zone (`timezone:`, default UTC).
    public var schedule: String?
    public var timeZone: String?
    /// `record:`: the source's files are text, read as these records (a `line` field each).
    public var textRecords: TextRecords?
    /// When a scheduled pipeline's first run may be due: its firings from here on are caught
    /// up. Nil: a pipeline that never ran starts at its latest firing (Airflow's catchup off).
    public var startDate: Date?
    /// Pipelines this one runs after (each must succeed first).
    public var after: [String] = []
    /// What happens to the source files once their rows are loaded (`after_load:`).
    public var afterLoad: AfterLoad = .keep
    /// Run over the queue (`staged: true`): each file, enrich step and load is a job of its
    /// own stage, handed on in batches through the control plane, so stages scale and
    /// retry on their own (`sluice worker --stage enrich`).
    public var staged = false
    /// Rows per batch between stages (and per `enrich` call). The default is 2,000.
    public var batchRows = 2_000
    /// Attempts per stage job before it lands in `error` (`retries:`). The default is 5.
    public var maxAttempts = 5
    /// `sql` steps: statements run in the target database after the rows are written, in
    /// the load's own transaction (ELT).
    public var sql: [String] = []
    /// For a `table:NAME` source: only rows matching this SQL condition (`where:`).
    public var sourceFilter: String?
    /// An export declared under `exports:` that delivers the entity's new rows after each
    /// successful load (`export:`): the pipeline's sink is then an HTTP API.
    public var export: String?

    /// `source: upload`: the pipeline reads files posted to `POST /pipelines/{name}/runs`.
    public static let uploadSource = "upload"

    /// The table a `table:NAME` source reads (in the target database), if that is the source.
    public var sourceTable: String? { source.hasPrefix("table:") ? String(source.dropFirst(6)) : nil }

    /// Seed 004's extractor removed what it had processed: `delete`, or `move_to: folder`.
    public enum AfterLoad: Sendable, Equatable { case keep, delete, move(String) }

    public init(name: String, source: String, glob: String? = nil, steps: [PipelineStep], into: String, mode: WriteMode? = nil) {
        self.name = name
        self.source = source
        self.glob = glob
        self.steps = steps
        self.into = into
        self.mode = mode
    }
}

/// A type a `cast` step converts a field to.
public enum CastType: String, Sendable, CaseIterable {
    case int, float, text, bool

    var exprType: EType {
        switch self {
        case .int: .int
        case .float: .float
        case .text: .text
        case .bool: .bool
        }
    }
}

/// One step of a pipeline, applied to each row in order.
public enum PipelineStep: Sendable, Equatable {
    /// Keep these fields, in this order.
    case select([String])
    case rename([Pair<String>])
    /// Convert fields; a value that does not convert rejects the row, with the reason.
    case cast([Pair<CastType>])
    /// Keep rows where the condition is true (false and null drop the row).
    case filter(Expr)
    /// Add or replace fields computed from the row.
    case derive([Pair<Expr>])
    /// Keep the first row of each key (these fields), drop the later ones.
    case dedupe([String])
    /// Look each row (or each distinct key) up in an HTTP API and add fields from its answer.
    case enrich(EnrichSpec)
    /// One row per element of a JSON array field (objects spread as `field_key`); a null or
    /// missing field makes no row.
    case explode(String)
    /// A JSON object field spread into `field_key` fields (nested objects too).
    case flatten(String)
    /// Patterns tried in order on a text field; the first that matches adds its named
    /// captures as fields. No match rejects the row with the reason.
    case parse(field: String, patterns: [LinearRegex])

    public var kind: String {
        switch self {
        case .select: "select"
        case .rename: "rename"
        case .cast: "cast"
        case .filter: "filter"
        case .derive: "derive"
        case .dedupe: "dedupe"
        case .enrich: "enrich"
        case .explode: "explode"
        case .flatten: "flatten"
        case .parse: "parse"
        }
    }
}

/// What an `enrich` step asks of an HTTP API, and how politely.
public struct EnrichSpec: Sendable, Equatable {
    /// `http://host/reverse?lat={lat}&lon={lon}`: `{field}` is replaced by the row's value, URL-encoded.
    public var url: String
    /// The fields the answer depends on (the cache key): the template's fields unless given.
    public var key: [String]
    /// New fields and the dotted JSON path in the answer each comes from.
    public var fields: [Pair<String>]
    /// How long an answer is reused from the cache, in seconds.
    public var cacheTTL: Double = 86_400
    /// Requests in flight at once (per process).
    public var concurrency = 8
    /// Requests per second for all workers together (shared through the control plane).
    public var rate: Double?
    public var maxAttempts = 5
    public var timeout: Double = 10
    public var onError: OnError = .reject
    /// The cache and rate limit's name (the step's URL host and path unless given).
    public var name: String

    /// What happens to a row whose lookup failed for good.
    public enum OnError: String, Sendable, CaseIterable { case reject, null, fail }

    public init(url: String, key: [String], fields: [Pair<String>], name: String) {
        self.url = url
        self.key = key
        self.fields = fields
        self.name = name
    }

    /// The `{field}` names in a URL template, in order.
    public static func templateFields(_ url: String) -> [String] {
        var out: [String] = []
        var rest = Substring(url)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let name = String(rest[rest.index(after: open)..<close])
            if !name.isEmpty && !out.contains(name) { out.append(name) }
            rest = rest[rest.index(after: close)...]
        }
        return out
    }

    /// Nominatim's reverse geocoding (`/reverse?format=jsonv2&lat=..&lon=..`): the fields it
    /// fills by default.
    public static let nominatimFields: [Pair<String>] = [
        Pair("address", "display_name"), Pair("road", "address.road"), Pair("city", "address.city"),
        Pair("state", "address.state"), Pair("postcode", "address.postcode"), Pair("country", "address.country"),
    ]
}

/// A name and what goes with it, in declaration order.
public struct Pair<T: Sendable & Equatable>: Sendable, Equatable {
    public var name: String
    public var value: T
    public init(_ name: String, _ value: T) {
        self.name = name
        self.value = value
    }
}

/// Where a step check failed: the step's index (0-based) and why.
public struct StepError: Error, Sendable, Equatable {
    public var step: Int
    public var message: String
}

extension Pipeline {
    /// Follows the fields through the steps: which exist (once a `select` names them all)
    /// and their types (after `cast` and `derive`); every expression must type-check there,
    /// every condition must be true/false. Returns the output fields when they are known.
    /// `fields`: the source's fields when known (a CSV header), so that a step naming a
    /// field the rows will not have is an error rather than a run that drops every row.
    public static func check(_ steps: [PipelineStep], fields: [String]? = nil) throws(StepError) -> [String]? {
        var types: [String: EType] = [:]
        var order: [String]? = fields  // the full field list, once known
        /// Known fields with their types (`any` until cast or derived).
        func visible() -> [String: EType] {
            guard let order else { return types }
            var out: [String: EType] = [:]
            for n in order { out[n] = types[n] ?? .any }
            return out
        }
        func need(_ name: String, _ i: Int) throws(StepError) {
            if let order, !order.contains(name) {
                throw StepError(step: i, message: "no field '\(name)' here\(Suggestion.hint(for: name, in: order)) (fields: \(order.joined(separator: ", ")))")
            }
        }
        for (i, step) in steps.enumerated() {
            switch step {
            case .select(let names):
                for n in names { try need(n, i) }
                types = types.filter { names.contains($0.key) }
                order = names
            case .rename(let pairs):
                for p in pairs {
                    try need(p.name, i)
                    if let t = types.removeValue(forKey: p.name) { types[p.value] = t }
                    order = order?.map { $0 == p.name ? p.value : $0 }
                }
            case .cast(let pairs):
                for p in pairs {
                    try need(p.name, i)
                    types[p.name] = p.value.exprType
                }
            case .filter(let e):
                switch ExprChecker.type(e, known: visible(), open: order == nil) {
                case .failure(let m): throw StepError(step: i, message: m.message)
                case .success(let t):
                    if !(t == .bool || t == .any || t == .null) { throw StepError(step: i, message: "a filter must be true or false, not \(t.rawValue)") }
                }
            case .derive(let pairs):
                for p in pairs {
                    switch ExprChecker.type(p.value, known: visible(), open: order == nil) {
                    case .failure(let m): throw StepError(step: i, message: "\(p.name): \(m.message)")
                    case .success(let t):
                        types[p.name] = t == .null ? .any : t
                        if let o = order, !o.contains(p.name) { order = o + [p.name] }
                    }
                }
            case .dedupe(let names):
                for n in names { try need(n, i) }
            case .parse(let f, let patterns):
                try need(f, i)
                for name in patterns.flatMap(\.names) {
                    types[name] = .any
                    if let o = order, !o.contains(name) { order = o + [name] }
                }
            case .explode(let f), .flatten(let f):
                try need(f, i)
                types[f] = nil
                order = nil  // the new fields depend on the data
            case .enrich(let spec):
                for n in EnrichSpec.templateFields(spec.url) + spec.key { try need(n, i) }
                for p in spec.fields {
                    types[p.name] = .any
                    if let o = order, !o.contains(p.name) { order = o + [p.name] }
                }
            }
        }
        return order
    }
}

/// One row as it flows through the steps: ordered field names and their values, side by
/// side. Rows of one shape share their `fields` array, so a step resolves names once per
/// shape, not once per row.
public struct PipelineRow: Sendable, Equatable {
    public var fields: [String]
    /// The values, in the order of `fields`.
    public var slots: [EValue]

    public init(fields: [String], slots: [EValue]) {
        self.fields = fields
        self.slots = slots
    }

    /// A row from named values: `fields` first, in order (null where `values` has none),
    /// then any other names `values` holds, sorted.
    public init(fields: [String], values: [String: EValue]) {
        var names = fields
        for k in values.keys.sorted() where !fields.contains(k) { names.append(k) }
        self.fields = names
        slots = names.map { values[$0] ?? .null }
    }

    /// A field's value (nil when the row has no such field). Setting a new name appends it.
    public subscript(name: String) -> EValue? {
        get { fields.firstIndex(of: name).map { slots[$0] } }
        set {
            if let i = fields.firstIndex(of: name) {
                slots[i] = newValue ?? .null
            } else if let v = newValue {
                fields.append(name)
                slots.append(v)
            }
        }
    }

    /// Removes the field (every occurrence of the name) and its value.
    public mutating func remove(_ name: String) {
        while let i = fields.firstIndex(of: name) {
            fields.remove(at: i)
            slots.remove(at: i)
        }
    }

    /// The values by name (the first of a repeated name), for tests and slow paths.
    public var values: [String: EValue] { Dictionary(zip(fields, slots), uniquingKeysWith: { a, _ in a }) }
}

/// Applies a pipeline's steps to rows, one at a time (`dedupe` remembers the keys it saw).
/// The steps are compiled per row shape (its field names): names become slots and
/// expressions read slots, so a row costs no lookups by name. `flatten` and `explode`
/// make shapes from the data; the steps after them are compiled for each shape they make.
public struct RowTransformer: Sendable {
    public enum Outcome: Sendable, Equatable {
        case keep(PipelineRow)
        /// Filtered out or a duplicate: not an error.
        case drop
        /// A value that does not convert: the row is rejected with why.
        case reject(String)
    }

    let steps: [PipelineStep]
    var seen: [Int: Set<[EValue]>] = [:]
    /// Per step a run starts at (0, or after a `flatten`/`explode`), the plan compiled for
    /// the last shape seen there (behind one reference: a row retains it once, not each of
    /// its arrays).
    var plans: [Compiled?]
    /// The `parse` steps' matching buffers, kept from row to row.
    var scratch = LinearRegex.Scratch()
    /// Value arrays kept from row to row (their room, not their values): the slots of the
    /// next text record when the last one was dropped, and where a `select` puts its pick.
    var spare: [EValue] = []
    var picked: [EValue] = []

    final class Compiled: Sendable {
        let plan: Plan
        init(_ plan: Plan) { self.plan = plan }
    }

    /// The steps from one index up to the next `flatten`/`explode` (or the end), for rows of
    /// one shape.
    struct Plan: Sendable {
        var input: [String]
        var ops: [Op] = []
        var output: [String] = []
        /// The most values a row holds on the way (room made once, up front).
        var width = 0
        /// The `flatten`/`explode` step the plan stops before (`steps.count`: none).
        var stop = 0
        /// The derives ``Op/number(_:from:decimal:derive:)`` falls back to: expression and name.
        var derives: [(Expr, String)] = []
        /// Whether the rows are text records (one field, `line`) that only `parse` ops read
        /// before a `select` drops it: a record's text need not be made (``run(text:into:)``).
        var parsesLine = false
    }

    enum Op: Sendable {
        /// The new row holds these slots (nil: null), in order.
        case select([Int?])
        case remove(Int)
        case cast(Int, CastType, String)
        case filter(Expr)
        /// Slot `Int` (the row's width: appended) gets the value.
        case derive(Int, Expr, String)
        /// A derive of `to_number(slot)` (or with a one-byte separator literal): a slot that
        /// holds a finite number already (a parse capture made one) is the value, with no call
        /// and nothing retained; any other value goes through the derive (`plan.derives`).
        case number(Int, from: Int, decimal: UInt8, derive: Int)
        case dedupe(step: Int, [Int?])
        case parse(ParseOp)
    }

    /// A `parse` step's plan, behind one reference: a row's `switch` over the ops then
    /// retains one object, not each of its arrays.
    final class ParseOp: Sendable {
        /// The slot parsed (nil: the field does not exist, read as empty text).
        let source: Int?
        let field: String
        /// The patterns' compiled programs (what matching needs), each a step thread's own.
        let programs: [LinearRegex.Compiled]
        /// Per pattern, where each target's name is among its captures (nil: not captured).
        let at: [[Int?]]
        /// The slot each captured name goes to, and what later ops need of it.
        let targets: [Int]
        let uses: [CaptureUse]

        init(source: Int?, field: String, programs: [LinearRegex.Compiled], at: [[Int?]], targets: [Int], uses: [CaptureUse]) {
            (self.source, self.field, self.programs, self.at, self.targets, self.uses) = (source, field, programs, at, targets, uses)
        }

        func using(_ uses: [CaptureUse]) -> ParseOp { ParseOp(source: source, field: field, programs: programs, at: at, targets: targets, uses: uses) }
    }

    /// What a `parse` makes of a capture: nothing when nothing reads it later (no text is
    /// made), its text, or — when only `to_number` with this decimal separator reads it — its
    /// number straight from the bytes (its text when it is not one, for `to_number` to refuse).
    enum CaptureUse: Sendable, Equatable {
        case unused, text, number(decimal: UInt8)
    }

    public init(steps: [PipelineStep]) {
        self.steps = steps
        plans = Array(repeating: nil, count: steps.count)
    }

    /// Whether a step remembers rows it saw (`dedupe`): the rows must then go through one
    /// transformer, in order.
    public var remembersRows: Bool { steps.contains { if case .dedupe = $0 { true } else { false } } }

    /// The outcome of one row through steps that make exactly one row of it (no `explode`).
    public mutating func apply(_ input: PipelineRow) -> Outcome { run(input).first ?? .drop }

    /// The outcomes of every row `input` becomes (an `explode` makes several, or none).
    public mutating func run(_ input: PipelineRow) -> [Outcome] {
        var out: [Outcome] = []
        run(input, from: 0, into: &out)
        return out
    }

    /// Appends the outcomes of every row `input` becomes to `out` (no array per row).
    public mutating func run(_ input: PipelineRow, into out: inout [Outcome]) { run(input, from: 0, into: &out) }

    /// The fields of a text record's row.
    public static let lineFields = ["line"]

    /// Appends the outcomes of one text record (its bytes, valid UTF-8 or not) as a row of
    /// one field, `line`. Where only `parse` steps read `line` before a `select` drops it, the
    /// record is matched in its bytes and no text is made of it (seed 004's files).
    public mutating func run(text bytes: UnsafeBufferPointer<UInt8>, into out: inout [Outcome]) {
        guard !steps.isEmpty, plan(at: 0, for: Self.lineFields).plan.parsesLine, Coercion.isValidUTF8(UnsafeRawBufferPointer(bytes)) else {
            return run(PipelineRow(fields: Self.lineFields, slots: [.text(String(decoding: bytes, as: UTF8.self))]), from: 0, into: &out)
        }
        var row = PipelineRow(fields: Self.lineFields, slots: [])
        swap(&row.slots, &spare)  // the last dropped record's room
        row.slots.append(.null)
        run(row, from: 0, into: &out, line: bytes)
    }

    /// The plan for rows of `fields` from step `i` (compiled when the last row there had others).
    mutating func plan(at i: Int, for fields: [String]) -> Compiled {
        if let p = plans[i], p.plan.input == fields { return p }
        let compiled = Compiled(compile(from: i, input: fields))
        plans[i] = compiled
        return compiled
    }

    /// The same steps with no plan compiled yet: a step thread compiles its own, so that no
    /// two threads retain and release the same objects for every row.
    public var unplanned: RowTransformer {
        var t = self
        t.plans = Array(repeating: nil, count: steps.count)
        return t
    }

    /// `line`: the text of slot 0, which holds null, for a plan that ``Plan/parsesLine``.
    mutating func run(_ input: consuming PipelineRow, from first: Int, into out: inout [Outcome], line: UnsafeBufferPointer<UInt8>? = nil) {
        var row = input  // moved, not copied: the values are this row's own to change
        var i = first
        while i < steps.count {
            let compiled = plan(at: i, for: row.fields)
            if let outcome = execute(compiled, &row.slots, line: i == first ? line : nil) {
                out.append(outcome)
                if line != nil {  // its values go; their room (its own) serves the next record
                    row.slots.removeAll(keepingCapacity: true)
                    swap(&row.slots, &spare)
                }
                return
            }
            row.fields = compiled.plan.output
            let stop = compiled.plan.stop
            guard stop < steps.count else { break }
            i = stop + 1
            switch steps[stop] {
            case .flatten(let f):
                guard case .object(let members)? = Self.json(row[f]) else { continue }
                var spread: [(String, EValue)] = []
                Self.spread(members, prefix: f, into: &spread)
                let at = row.fields.firstIndex(of: f) ?? row.fields.count
                row.remove(f)
                var added = PipelineRow(fields: [], slots: [])
                for (k, v) in spread {
                    if let j = row.fields.firstIndex(of: k) { row.slots[j] = v } else { added[k] = v }
                }
                row.fields.insert(contentsOf: added.fields, at: min(at, row.fields.count))
                row.slots.insert(contentsOf: added.slots, at: min(at, row.slots.count))
            case .explode(let f):
                let value = row[f] ?? .null
                guard value != .null else {
                    out.append(.drop)
                    return
                }
                guard case .array(let items)? = Self.json(value) else { continue }
                for item in items {
                    var r = row
                    if case .object(let members) = item {
                        var spread: [(String, EValue)] = []
                        Self.spread(members, prefix: f, into: &spread)
                        r.remove(f)
                        for (k, v) in spread { r[k] = v }
                    } else {
                        r[f] = Self.value(item)
                    }
                    run(r, from: i, into: &out)
                }
                return
            default:
                continue
            }
        }
        out.append(.keep(row))
    }

    /// Compiles the steps from `first` for rows whose fields are `input`.
    func compile(from first: Int, input: [String]) -> Plan {
        var plan = Plan(input: input)
        var fields = input
        var index: [String: Int] = [:]
        func reindex() {
            index = [:]
            for (k, f) in fields.enumerated() where index[f] == nil { index[f] = k }
        }
        reindex()
        /// The slot of `name`, appended when the row does not have it yet.
        func target(_ name: String) -> Int {
            if let k = index[name] { return k }
            fields.append(name)
            index[name] = fields.count - 1
            plan.width = max(plan.width, fields.count)
            return fields.count - 1
        }
        func resolve(_ e: Expr) -> Expr {
            switch e {
            // Rebuilt, not shared: a plan is compiled per step thread, and a box two threads
            // retain per row is a cache line they fight over.
            case .literal(let v): .literal(v)
            case .slot(let i): .slot(i)
            case .field(let n): index[n].map(Expr.slot) ?? .literal(.null)
            case .unary(let op, let x): .unary(op, resolve(x))
            case .binary(let op, let l, let r): BinaryOp(rawValue: op).map { .op($0, resolve(l), resolve(r)) } ?? .binary(op, resolve(l), resolve(r))
            case .op(let o, let l, let r): .op(o, resolve(l), resolve(r))
            case .isNull(let x, let negated): .isNull(resolve(x), negated: negated)
            case .inList(let x, let items): .inList(resolve(x), items.map(resolve))
            case .call(let name, let args): ExprFunction(rawValue: name).map { .fn($0, args.map(resolve)) } ?? .call(name, args.map(resolve))
            case .fn(let f, let args): .fn(f, args.map(resolve))
            }
        }
        plan.stop = steps.count
        loop: for i in first..<steps.count {
            switch steps[i] {
            case .select(let names):
                let picked = names.map { index[$0] }
                if picked != fields.indices.map(Optional.some) { plan.ops.append(.select(picked)) }
                fields = names
                reindex()
            case .rename(let pairs):
                for p in pairs {
                    guard let from = index[p.name] else { continue }
                    if let other = index[p.value], other != from {
                        plan.ops.append(.remove(other))  // the renamed field takes the other's place
                        fields.remove(at: other)
                    }
                    fields = fields.map { $0 == p.name ? p.value : $0 }
                    reindex()
                }
            case .cast(let pairs):
                for p in pairs {
                    if let k = index[p.name] { plan.ops.append(.cast(k, p.value, p.name)) }
                }
            case .filter(let e):
                plan.ops.append(.filter(resolve(e)))
            case .derive(let pairs):
                for p in pairs {
                    let e = resolve(p.value)  // before the name exists: `x: x + 1` reads the old x
                    if let (from, decimal) = Self.numberRead(e) {
                        plan.ops.append(.number(target(p.name), from: from, decimal: decimal, derive: plan.derives.count))
                        plan.derives.append((e, p.name))
                    } else {
                        plan.ops.append(.derive(target(p.name), e, p.name))
                    }
                }
            case .dedupe(let names):
                plan.ops.append(.dedupe(step: i, names.map { index[$0] }))
            case .parse(let f, let patterns):
                let source = index[f]
                // Every name any pattern captures is a field, in the order they first appear.
                var names: [String] = []
                for n in patterns.flatMap(\.names) where !names.contains(n) { names.append(n) }
                let at = patterns.map { p in names.map { p.names.firstIndex(of: $0) } }
                plan.ops.append(.parse(ParseOp(source: source, field: f, programs: patterns.map { $0.privateCopy().compiled }, at: at, targets: names.map(target), uses: [])))
            case .flatten, .explode:
                plan.stop = i
                break loop
            case .enrich:
                break  // done by the pipeline runner between segments (it needs I/O)
            }
        }
        plan.output = fields
        plan.width = max(plan.width, fields.count)
        Self.markCaptureUses(&plan.ops, liveAtEnd: fields.count)
        plan.parsesLine = input == Self.lineFields && Self.onlyParsed(plan.ops)
        return plan
    }

    /// Walks the ops backwards from the plan's output (every slot in it is read later) and
    /// tells each `parse` what later ops need of each capture (``CaptureUse``): those nothing
    /// reads (say a capture a `select` drops) are never made into text, and those only
    /// `to_number` reads are made into numbers at once.
    static func markCaptureUses(_ ops: inout [Op], liveAtEnd: Int) {
        var reads: [Int: CaptureUse] = [:]
        for k in 0..<liveAtEnd { reads[k] = .text }
        func merge(_ a: CaptureUse?, _ b: CaptureUse) -> CaptureUse { a.map { $0 == b ? b : .text } ?? b }
        func readAll(_ e: Expr) {
            var read = Set<Int>()
            e.slotsRead(into: &read)
            for k in read { reads[k] = merge(reads[k], .text) }
        }
        for i in ops.indices.reversed() {
            switch ops[i] {
            case .select(let picked):
                var before: [Int: CaptureUse] = [:]
                for (k, use) in reads where k < picked.count {
                    if let from = picked[k] { before[from] = merge(before[from], use) }
                }
                reads = before
            case .remove(let k):
                reads = Dictionary(uniqueKeysWithValues: reads.map { ($0.key >= k ? $0.key + 1 : $0.key, $0.value) })
            case .cast(let k, _, _):
                reads[k] = merge(reads[k], .text)  // read even when its value goes nowhere: a cast can reject the row
            case .filter(let e):
                readAll(e)
            case .number(let k, let from, let decimal, _):
                reads[k] = nil
                reads[from] = merge(reads[from], .number(decimal: decimal))
            case .derive(let k, let e, _):
                reads[k] = nil
                readAll(e)
            case .dedupe(_, let key):
                for k in key.compactMap({ $0 }) { reads[k] = merge(reads[k], .text) }
            case .parse(let p):
                let uses = p.targets.map { reads[$0] ?? .unused }
                for t in p.targets { reads[t] = nil }
                if let source = p.source { reads[source] = merge(reads[source], .text) }
                ops[i] = .parse(p.using(uses))
            }
        }
    }

    /// Whether slot 0 is read by `parse` ops alone, written by none, and dropped by the first
    /// `select` or `remove`: then its text is never needed, only its bytes.
    static func onlyParsed(_ ops: [Op]) -> Bool {
        var parsed = false
        for op in ops {
            var read = Set<Int>()
            switch op {
            case .select(let picked): return parsed && !picked.contains(0)
            case .remove(let k): return parsed && k == 0
            case .parse(let p):
                if p.targets.contains(0) { return false }
                parsed = parsed || p.source == 0
            case .cast(let k, _, _): if k == 0 { return false }
            case .filter(let e): e.slotsRead(into: &read)
            case .derive(let k, let e, _):
                if k == 0 { return false }
                e.slotsRead(into: &read)
            case .number(let k, let from, _, _): if k == 0 || from == 0 { return false }
            case .dedupe(_, let key): if key.contains(0) { return false }
            }
            if read.contains(0) { return false }
        }
        return false  // the output holds it
    }

    /// The slot and decimal separator of `to_number(slot)` or `to_number(slot, 'c')` with a
    /// one-byte literal; nil for any other expression (a separator that is not one byte is
    /// `to_number`'s error).
    static func numberRead(_ e: Expr) -> (from: Int, decimal: UInt8)? {
        guard case .fn(.toNumber, let args) = e, case .slot(let from)? = args.first else { return nil }
        if args.count == 1 { return (from, UInt8(ascii: ".")) }
        guard args.count == 2, case .literal(.text(let d)) = args[1], d.utf8.count == 1, let decimal = d.utf8.first else { return nil }
        return (from, decimal)
    }

    /// A derive's value, or nil with `rejected` set to why the row is refused.
    static func derive(_ e: Expr, _ name: String, _ slots: [EValue], _ rejected: inout Outcome?) -> EValue? {
        do { return try ExprEvaluator.eval(e, slots: slots) } catch {
            rejected = .reject("derive: \(name): \(error.message)")
            return nil
        }
    }

    /// Runs a plan's steps over one row's values: nil when the row goes on, else why not.
    /// `line`: the parsed text of a plan that ``Plan/parsesLine`` (its slot holds null).
    mutating func execute(_ compiled: Compiled, _ slots: inout [EValue], line: UnsafeBufferPointer<UInt8>? = nil) -> Outcome? {
        var line = line
        slots.reserveCapacity(compiled.plan.width)
        var rejected: Outcome? = nil
        // By index, not `for op in`: the iterator hands out a copy of each op (a retain and
        // release of every array and expression it holds, per row).
        let ops = compiled.plan.ops
        for i in ops.indices {
            switch ops[i] {
            case .select(let pick):
                line = nil  // slot 0 is something else now
                // Into an array kept from the last row (no allocation), which then holds this
                // row's old array for the next.
                picked.removeAll(keepingCapacity: true)
                for k in pick { picked.append(k.map { slots[$0] } ?? .null) }
                swap(&slots, &picked)
            case .remove(let k):
                line = nil
                slots.remove(at: k)
            case .cast(let k, let type, let name):
                guard let c = Self.cast(slots[k], to: type) else {
                    return .reject("cast: \(name): '\(slots[k].text ?? "")' is not \(type == .int ? "an" : "a") \(type.rawValue)")
                }
                slots[k] = c
            case .filter(let e):
                do {
                    if try !ExprEvaluator.isTrue(e, slots: slots) { return .drop }
                } catch {
                    return .reject("filter: \(error.message)")
                }
            case .derive(let k, let e, let name):
                guard let v = Self.derive(e, name, slots, &rejected) else { return rejected }
                Self.put(v, at: k, in: &slots)
            case .number(let k, let from, _, let d):
                let v: EValue
                if case .double(let x) = slots[from], x.isFinite {
                    v = .double(x)
                } else {
                    let (e, name) = compiled.plan.derives[d]
                    guard let made = Self.derive(e, name, slots, &rejected) else { return rejected }
                    v = made
                }
                Self.put(v, at: k, in: &slots)
            case .dedupe(let step, let key):
                if !seen[step, default: []].insert(key.map { $0.map { slots[$0] } ?? .null }).inserted { return .drop }
            case .parse(let p):
                if let line, p.source == 0 {
                    if !parse(p, line, &slots) { return .reject("parse: no pattern matches \(p.field) '\(SourceLocation.excerpt(String(decoding: line, as: UTF8.self)))'") }
                    continue
                }
                var text = p.source.flatMap { slots[$0].text } ?? ""
                if !text.withUTF8({ parse(p, $0, &slots) }) { return .reject("parse: no pattern matches \(p.field) '\(SourceLocation.excerpt(text))'") }
            }
        }
        return nil
    }

    /// Sets slot `k`, appending it when it is the row's width (a new field).
    @inline(__always)
    static func put(_ v: EValue, at k: Int, in slots: inout [EValue]) {
        if k == slots.count { slots.append(v) } else { slots[k] = v }
    }

    /// Matches `bytes` (valid UTF-8) with a `parse` op's patterns in order; on a match, sets
    /// the captures' slots (null for names the matching pattern lacks) and returns true.
    mutating func parse(_ p: ParseOp, _ bytes: UnsafeBufferPointer<UInt8>, _ slots: inout [EValue]) -> Bool {
        // The compiled programs, through a buffer: a regex copied out of the array is three retains.
        let matched = p.programs.withUnsafeBufferPointer { programs -> Int? in
            for k in programs.indices where programs[k].run(bytes, &scratch) { return k }
            return nil
        }
        if let k = matched {
            let at = p.at[k]
            scratch.caps.withUnsafeBufferPointer { caps in
                // Every name any pattern captures is a field; those this one did not set are null.
                for (n, t) in p.targets.enumerated() {
                    var v = EValue.null
                    let use = p.uses[n]
                    if use != .unused, let j = at[n], case let (a, b) = (caps[2 * (j + 1)], caps[2 * (j + 1) + 1]), a >= 0, b >= a {
                        let captured = UnsafeBufferPointer(rebasing: bytes[a..<b])
                        if case .number(let decimal) = use, let x = ExprEvaluator.toNumber(UnsafeRawBufferPointer(captured), decimal: decimal), x.isFinite {
                            v = .double(x)
                        } else {
                            v = .text(String(decoding: captured, as: UTF8.self))
                        }
                    }
                    Self.put(v, at: t, in: &slots)
                }
            }
            return true
        }
        return false
    }

    /// A field's value as JSON (JSON text in a text field is parsed).
    static func json(_ v: EValue?) -> JSONValue? {
        guard case .text(let s)? = v, let first = s.first(where: { !$0.isWhitespace }), first == "{" || first == "[" else { return nil }
        return try? JSONParser.parse(s)
    }

    /// A JSON value as an expression value: nested arrays and objects as their JSON text.
    public static func value(_ v: JSONValue) -> EValue {
        switch v {
        case .null: .null
        case .bool(let b): .bool(b)
        case .number(let n): Int64(n).map(EValue.int) ?? Double(n).map(EValue.double) ?? .text(n)
        case .string(let s): .text(s)
        case .array, .object: .text(v.text)
        }
    }

    static func spread(_ members: [JSONMember], prefix: String, into out: inout [(String, EValue)]) {
        for m in members {
            let name = prefix + "_" + m.key
            if case .object(let inner) = m.value { spread(inner, prefix: name, into: &out) } else { out.append((name, value(m.value))) }
        }
    }

    /// nil when the value does not convert (null stays null).
    static func cast(_ v: EValue, to t: CastType) -> EValue? {
        if v == .null { return .null }
        switch t {
        case .text: return .text(v.text ?? "")
        case .int: return v.integer.map(EValue.int)
        case .float: return v.number.map(EValue.double)
        case .bool:
            switch v {
            case .bool: return v
            case .int(let i) where i == 0 || i == 1: return .bool(i == 1)
            case .text(let s):
                switch EValue.trim(s).lowercased() {
                case "true", "t", "yes", "y", "1": return .bool(true)
                case "false", "f", "no", "n", "0": return .bool(false)
                default: return nil
                }
            default: return nil
            }
        }
    }
}
