public import SluiceCore

/// Which files of a snapshot a condition can hold rows of, by their partition values and
/// statistics: `and`/`or` of comparisons between a column and a literal (`=`, `<`, `<=`,
/// `>`, `>=`). Anything else may match. A file is skipped only when no row of it can.
public enum DeltaSkipping {
    public static func mayMatch(_ e: Expr, _ f: DeltaFileAction, _ s: DeltaSnapshot) -> Bool {
        let stats = f.stats.flatMap { try? JSONParser.parse($0) }
        return eval(e, f, s, stats) != false
    }

    /// true: every row may match; false: none can; nil: unknown.
    static func eval(_ e: Expr, _ f: DeltaFileAction, _ s: DeltaSnapshot, _ stats: JSONValue?) -> Bool? {
        switch e {
        case .binary("and", let l, let r):
            let (a, b) = (eval(l, f, s, stats), eval(r, f, s, stats))
            return a == false || b == false ? false : nil
        case .binary("or", let l, let r):
            let (a, b) = (eval(l, f, s, stats), eval(r, f, s, stats))
            return a == false && b == false ? false : nil
        case .binary(let op, .field(let c), .literal(let v)):
            return compare(c, op, v, f, s, stats)
        case .binary(let op, .literal(let v), .field(let c)):
            let flipped = ["<": ">", "<=": ">=", ">": "<", ">=": "<="][op] ?? op
            return compare(c, flipped, v, f, s, stats)
        default:
            return nil
        }
    }

    static func compare(_ column: String, _ op: String, _ v: EValue, _ f: DeltaFileAction, _ s: DeltaSnapshot, _ stats: JSONValue?) -> Bool? {
        guard ["=", "<", "<=", ">", ">="].contains(op), let field = s.schema.field(named: column) else { return nil }
        let key = s.partitionKey(column)
        if s.metadata.partitionColumns.contains(column) {
            // Every row of the file has this value; NULL satisfies no comparison.
            guard let raw = f.partitionValues[key] ?? nil, !raw.isEmpty else { return false }
            guard let c = order(.string(raw), v, field.type) else { return nil }
            return holds(op, c)
        }
        guard let stats, let lo = stats["minValues"]?[physical(field)], var hi = stats["maxValues"]?[physical(field)],
              let cl = order(lo, v, field.type) else { return nil }
        // A string maximum cut to its first characters is no upper bound.
        if case .string(let t) = hi, field.type == .primitive("string"), t.count >= 32 { hi = .null }
        guard let ch = order(hi, v, field.type) else { return cl > 0 && (op == "=" || op == "<" || op == "<=") ? false : nil }
        // Some value in [min, max] can satisfy `op v` unless the whole range is on the wrong side.
        switch op {
        case "=": return cl <= 0 && ch >= 0 ? nil : false
        case "<": return cl < 0 ? nil : false
        case "<=": return cl <= 0 ? nil : false
        case ">": return ch > 0 ? nil : false
        default: return ch >= 0 ? nil : false
        }
    }

    static func physical(_ f: DeltaSchema.Field) -> String { f.physicalName ?? f.name }

    static func holds(_ op: String, _ c: Int) -> Bool {
        switch op {
        case "=": c == 0
        case "<": c < 0
        case "<=": c <= 0
        case ">": c > 0
        default: c >= 0
        }
    }

    /// How a statistic or partition value orders against the literal (-1, 0, 1), for
    /// numbers and text (dates and timestamps as ISO text); nil when they do not compare.
    static func order(_ stat: JSONValue, _ v: EValue, _ type: DeltaSchema.FieldType) -> Int? {
        let numeric: Bool
        switch type {
        case .primitive(let p) where ["long", "integer", "short", "byte", "float", "double"].contains(p): numeric = true
        case .decimal: numeric = true
        case .primitive("string"), .primitive("date"): numeric = false  // ISO dates order as text
        default: return nil  // timestamps' statistics are cut to milliseconds, in their own text form
        }
        if numeric {
            let a: Double?
            switch stat {
            case .number(let n), .string(let n): a = Double(n)
            default: a = nil
            }
            let b: Double?
            switch v {
            case .int(let i): b = Double(i)
            case .double(let d): b = d
            case .text(let t): b = Double(t)
            default: b = nil
            }
            guard let a, let b, a.isFinite, b.isFinite else { return nil }
            return a < b ? -1 : a > b ? 1 : 0
        }
        guard case .string(let a) = stat, case .text(let b) = v else { return nil }
        return a < b ? -1 : a > b ? 1 : 0
    }
}
