/// A fuzz target for the expression language and the pipeline steps: the input bytes choose
/// expressions, steps and rows full of extreme values (Int64.min, NaN, 1e308, JSON text, huge
/// indices). Everything must end in a value, a drop or a reject — never a trap. The
/// expressions are evaluated whether or not they type-check, and also rendered to text and
/// parsed back, so the parser sees them too.
public enum StepFuzzTarget {
    /// Runs one input; returns how many rows came out kept, dropped and rejected.
    @discardableResult
    public static func run(_ bytes: [UInt8]) -> (kept: Int, dropped: Int, rejected: Int) {
        var g = Generator(bytes: bytes)
        var steps: [PipelineStep] = []
        for _ in 0..<(1 + g.below(5)) { steps.append(g.step()) }
        _ = try? Pipeline.check(steps)
        for case .filter(let e) in steps { _ = try? ExprParser.parse(Generator.render(e)) }
        for case .derive(let pairs) in steps { for p in pairs { _ = try? ExprParser.parse(Generator.render(p.value)) } }
        var transformer = RowTransformer(steps: steps)
        var counts = (kept: 0, dropped: 0, rejected: 0)
        for _ in 0..<(1 + g.below(4)) {
            for outcome in transformer.run(g.row()) {
                switch outcome {
                case .keep: counts.kept += 1
                case .drop: counts.dropped += 1
                case .reject: counts.rejected += 1
                }
            }
        }
        return counts
    }

    /// Reads choices from the input bytes (zeros once they run out).
    struct Generator {
        let bytes: [UInt8]
        var at = 0

        mutating func byte() -> UInt8 {
            defer { at += 1 }
            return at < bytes.count ? bytes[at] : 0
        }

        mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(byte()) % n }

        static let fields = ["a", "b", "c", "d"]
        static let values: [EValue] = [
            .null, .bool(true), .bool(false), .int(.min), .int(.max), .int(-1), .int(0), .int(1), .int(2), .int(1 << 62),
            .double(1e20), .double(-1e20), .double(.nan), .double(.infinity), .double(-.infinity), .double(0.5),
            .double(1e-300), .double(1e308), .double(-0.0), .double(9.223372036854775807e18),
            .text(""), .text("  12 "), .text("abc"), .text("9223372036854775808"), .text("-9223372036854775809"),
            .text("1e400"), .text("NaN"), .text("-inf"), .text("ção 😀"),
            .text(#"{"a": {"b": 1, "c": [1, 2]}, "d": null}"#), .text(#"[1, -9223372036854775808, {"x": null}, [], "s"]"#),
            .text("[" + String(repeating: "[", count: 300) + "]"), .text(#"{"a": 1e999}"#),
        ]
        static let binary = ["+", "-", "*", "/", "%", "||", "=", "!=", "<", "<=", ">", ">=", "and", "or"]
        static let functions = ["lower", "upper", "trim", "length", "substr", "replace", "starts_with", "ends_with", "contains",
                                "concat", "coalesce", "abs", "round", "if", "nope"]

        mutating func field() -> String { Self.fields[below(Self.fields.count)] }
        mutating func value() -> EValue { Self.values[below(Self.values.count)] }

        mutating func expr(depth: Int = 0) -> Expr {
            if depth >= 6 { return below(2) == 0 ? .literal(value()) : .field(field()) }
            switch below(8) {
            case 0: return .literal(value())
            case 1: return .field(field())
            case 2: return .unary(below(2) == 0 ? "-" : "not", expr(depth: depth + 1))
            case 3: return .isNull(expr(depth: depth + 1), negated: below(2) == 0)
            case 4: return .inList(expr(depth: depth + 1), (0..<below(4)).map { _ in expr(depth: depth + 1) })
            case 5: return .call(Self.functions[below(Self.functions.count)], (0..<below(4)).map { _ in expr(depth: depth + 1) })
            default: return .binary(Self.binary[below(Self.binary.count)], expr(depth: depth + 1), expr(depth: depth + 1))
            }
        }

        mutating func step() -> PipelineStep {
            switch below(9) {
            case 0: return .select((0..<(1 + below(3))).map { _ in field() })
            case 1: return .rename([Pair(field(), field())])
            case 2: return .cast([Pair(field(), CastType.allCases[below(CastType.allCases.count)])])
            case 3: return .filter(expr())
            case 4: return .dedupe([field()])
            case 5: return .explode(field())
            case 6: return .flatten(field())
            default: return .derive((0..<(1 + below(2))).map { _ in Pair(field(), expr()) })
            }
        }

        mutating func row() -> PipelineRow {
            var values: [String: EValue] = [:]
            for f in Self.fields where below(5) != 0 { values[f] = value() }
            return PipelineRow(fields: Self.fields, values: values)
        }

        /// An expression as text the parser reads back (literals the tokenizer cannot write, such
        /// as negative or non-finite numbers, come out as expressions or text).
        static func render(_ e: Expr) -> String {
            switch e {
            case .literal(let v):
                switch v {
                case .null: return "null"
                case .bool(let b): return b ? "true" : "false"
                case .int(let i): return i < 0 ? "(-\(i.magnitude))" : String(i)
                case .double(let d): return d.isFinite ? (d < 0 ? "(-\(-d))" : "\(d)") : "'\(d)'"
                case .text(let s): return "'" + EValue.replace(s, "'", "''") + "'"
                }
            case .field(let f): return "`\(f)`"
            case .slot: return "null"
            case .unary(let op, let x): return op == "not" ? "not (\(render(x)))" : "-(\(render(x)))"
            case .isNull(let x, let negated): return "(\(render(x))) is \(negated ? "not " : "")null"
            case .inList(let x, let items): return "(\(render(x))) in (\(items.isEmpty ? "null" : items.map(render).joined(separator: ", ")))"
            case .call(let name, let args): return "\(name)(\(args.map(render).joined(separator: ", ")))"
            case .fn(let f, let args): return render(.call(f.rawValue, args))
            case .op(let o, let l, let r): return render(.binary(o.rawValue, l, r))
            case .binary(let op, let l, let r): return "(\(render(l))) \(op) (\(render(r)))"
            }
        }
    }
}
