/// The small expression language of pipeline steps (`filter`, `derive`): literals, fields,
/// arithmetic, comparisons, `and`/`or`/`not`, `is [not] null`, `in (...)`, `||` and a few
/// string and null functions. Parsed and type-checked when the config loads; evaluated per
/// row with SQL's null rules (null in, null out; a null condition is false). Never `eval`.
public indirect enum Expr: Sendable, Equatable {
    case literal(EValue)
    case field(String)
    /// A field resolved to its position in the row (made by the row transformer, never parsed).
    case slot(Int)
    /// A call whose function was looked up once (made by the row transformer, never parsed).
    case fn(ExprFunction, [Expr])
    /// A binary operation whose operator was looked up once (made by the row transformer).
    case op(BinaryOp, Expr, Expr)
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case isNull(Expr, negated: Bool)
    case inList(Expr, [Expr])
    case call(String, [Expr])
}

extension Expr {
    /// How many levels the tree has (a literal or a field is 1).
    public var depth: Int {
        switch self {
        case .literal, .field, .slot: 1
        case .unary(_, let x), .isNull(let x, _): 1 + x.depth
        case .binary(_, let l, let r), .op(_, let l, let r): 1 + max(l.depth, r.depth)
        case .inList(let x, let items): 1 + max(x.depth, items.map(\.depth).max() ?? 0)
        case .call(_, let args), .fn(_, let args): 1 + (args.map(\.depth).max() ?? 0)
        }
    }
}

extension Expr {
    /// The slots a resolved expression reads (``Expr/slot(_:)``), added to `out`.
    func slotsRead(into out: inout Set<Int>) {
        switch self {
        case .literal, .field: break
        case .slot(let i): out.insert(i)
        case .unary(_, let x), .isNull(let x, _): x.slotsRead(into: &out)
        case .binary(_, let l, let r), .op(_, let l, let r):
            l.slotsRead(into: &out)
            r.slotsRead(into: &out)
        case .inList(let x, let items):
            x.slotsRead(into: &out)
            for i in items { i.slotsRead(into: &out) }
        case .call(_, let args), .fn(_, let args): for a in args { a.slotsRead(into: &out) }
        }
    }
}

/// A value while evaluating: null, bool, integer, float or text.
public enum EValue: Sendable, Equatable, Hashable {
    case null, bool(Bool), int(Int64), double(Double), text(String)

    var number: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        case .text(let s): Double(EValue.trim(s))
        case .bool, .null: nil
        }
    }

    var integer: Int64? {
        switch self {
        case .int(let i): i
        case .double(let d) where d == d.rounded() && abs(d) < 9e18: Int64(d)
        case .text(let s): Int64(EValue.trim(s)) ?? Double(EValue.trim(s)).flatMap { $0 == $0.rounded() && abs($0) < 9e18 ? Int64($0) : nil }
        default: nil
        }
    }

    /// A space, tab or line end: what ``trim(_:)`` removes.
    @inline(__always) static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    /// `s` without leading and trailing spaces, tabs and line ends.
    static func trim(_ s: String) -> String {
        let u = s.utf8
        let blank = isBlank
        guard let first = u.first, let last = u.last, blank(first) || blank(last) else { return s }  // the usual case: nothing to trim
        guard let start = u.firstIndex(where: { !blank($0) }), let end = u.lastIndex(where: { !blank($0) }) else { return "" }
        return String(Substring(u[start...end]))
    }

    /// Every occurrence of `a` in `s` replaced by `b` (`s` unchanged when `a` is empty).
    static func replace(_ s: String, _ a: String, _ b: String) -> String {
        guard !a.isEmpty else { return s }
        var out = "", rest = Substring(s)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }

    /// Text form (numbers as written, booleans as true/false).
    public var text: String? {
        switch self {
        case .null: nil
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d): ValueText.double(d)
        case .text(let s): s
        }
    }
}

/// Static types for checking: `any` is a field whose type is not known yet (it is coerced
/// at run time).
public enum EType: String, Sendable, Equatable {
    case any, bool, int, float, text, null

    var isNumeric: Bool { self == .int || self == .float || self == .any }
    var isText: Bool { self == .text || self == .any }
    var isBool: Bool { self == .bool || self == .any }
}

/// A parse or type error, with its place in the expression.
public struct ExprError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) (at character \(offset + 1))" }
}

public enum ExprParser {
    enum Token: Equatable {
        case number(String), string(String), ident(String), op(String), lparen, rparen, comma, end
    }

    static func tokens(_ text: String) throws(ExprError) -> [(Token, Int)] {
        let c = Array(text.unicodeScalars)
        var out: [(Token, Int)] = []
        var i = 0
        func isIdentStart(_ u: Unicode.Scalar) -> Bool { u == "_" || u.properties.isAlphabetic }
        func isIdent(_ u: Unicode.Scalar) -> Bool { isIdentStart(u) || ("0"..."9").contains(u) || u == "." }
        while i < c.count {
            let u = c[i]
            if u == " " || u == "\t" || u == "\n" || u == "\r" { i += 1; continue }
            let start = i
            if ("0"..."9").contains(u) {
                while i < c.count, ("0"..."9").contains(c[i]) || c[i] == "." || c[i] == "e" || c[i] == "E"
                        || ((c[i] == "+" || c[i] == "-") && (c[i - 1] == "e" || c[i - 1] == "E")) { i += 1 }
                out.append((.number(String(String.UnicodeScalarView(c[start..<i]))), start))
            } else if u == "'" || u == "\"" {
                var s = String.UnicodeScalarView()
                i += 1
                while true {
                    guard i < c.count else { throw ExprError(message: "unterminated string", offset: start) }
                    if c[i] == u {
                        if i + 1 < c.count && c[i + 1] == u { s.append(u); i += 2; continue }  // doubled quote
                        i += 1
                        break
                    }
                    s.append(c[i])
                    i += 1
                }
                out.append((.string(String(s)), start))
            } else if u == "`" {
                i += 1
                while i < c.count && c[i] != "`" { i += 1 }
                guard i < c.count else { throw ExprError(message: "unterminated `name`", offset: start) }
                out.append((.ident(String(String.UnicodeScalarView(c[(start + 1)..<i]))), start))
                i += 1
            } else if isIdentStart(u) {
                while i < c.count && isIdent(c[i]) { i += 1 }
                out.append((.ident(String(String.UnicodeScalarView(c[start..<i]))), start))
            } else if u == "(" { out.append((.lparen, i)); i += 1
            } else if u == ")" { out.append((.rparen, i)); i += 1
            } else if u == "," { out.append((.comma, i)); i += 1
            } else {
                let two = i + 1 < c.count ? String(String.UnicodeScalarView([u, c[i + 1]])) : ""
                if ["<=", ">=", "!=", "<>", "==", "||"].contains(two) {
                    out.append((.op(two == "<>" ? "!=" : two == "==" ? "=" : two), i))
                    i += 2
                } else if "+-*/%<>=".unicodeScalars.contains(u) {
                    out.append((.op(String(u)), i))
                    i += 1
                } else {
                    throw ExprError(message: "unexpected character '\(u)'", offset: i)
                }
            }
        }
        out.append((.end, c.count))
        return out
    }

    /// Limits that keep parsing and evaluation to a small, fixed stack: tokens in one
    /// expression, and how deeply its parts may nest.
    static let maxTokens = 4_096, maxDepth = 128

    /// Parses one expression.
    public static func parse(_ text: String) throws(ExprError) -> Expr {
        let tokens = try tokens(text)
        guard tokens.count <= maxTokens else { throw ExprError(message: "the expression is longer than \(maxTokens) tokens", offset: 0) }
        var p = Parser(tokens: tokens)
        let e = try p.or()
        guard case .end = p.peek else { throw ExprError(message: "unexpected \(p.describe(p.peek)) after the expression", offset: p.offset) }
        guard e.depth <= maxDepth else { throw ExprError(message: "the expression nests deeper than \(maxDepth) levels", offset: 0) }
        return e
    }

    struct Parser {
        var tokens: [(Token, Int)]
        var at = 0
        /// Open parentheses, unary operators and calls around the current token.
        var nesting = 0

        mutating func nest() throws(ExprError) {
            nesting += 1
            if nesting > ExprParser.maxDepth { throw ExprError(message: "the expression nests deeper than \(ExprParser.maxDepth) levels", offset: offset) }
        }
        var peek: Token { tokens[at].0 }
        var offset: Int { tokens[at].1 }

        mutating func next() -> Token { defer { at += 1 }; return tokens[at].0 }

        func describe(_ t: Token) -> String {
            switch t {
            case .number(let n): "number \(n)"
            case .string(let s): "text '\(s)'"
            case .ident(let s): "'\(s)'"
            case .op(let o): "'\(o)'"
            case .lparen: "'('"
            case .rparen: "')'"
            case .comma: "','"
            case .end: "the end"
            }
        }

        func isKeyword(_ t: Token, _ k: String) -> Bool {
            if case .ident(let s) = t { return s.lowercased() == k }
            return false
        }

        mutating func or() throws(ExprError) -> Expr {
            var e = try and()
            while isKeyword(peek, "or") { at += 1; e = .binary("or", e, try and()) }
            return e
        }

        mutating func and() throws(ExprError) -> Expr {
            var e = try not()
            while isKeyword(peek, "and") { at += 1; e = .binary("and", e, try not()) }
            return e
        }

        mutating func not() throws(ExprError) -> Expr {
            if isKeyword(peek, "not") {
                at += 1
                try nest()
                defer { nesting -= 1 }
                return .unary("not", try not())
            }
            return try comparison()
        }

        mutating func comparison() throws(ExprError) -> Expr {
            let left = try additive()
            if case .op(let o) = peek, ["=", "!=", "<", "<=", ">", ">="].contains(o) {
                at += 1
                return .binary(o, left, try additive())
            }
            if isKeyword(peek, "is") {
                at += 1
                var negated = false
                if isKeyword(peek, "not") { at += 1; negated = true }
                guard isKeyword(peek, "null") else { throw ExprError(message: "expected null after 'is'", offset: offset) }
                at += 1
                return .isNull(left, negated: negated)
            }
            var negatedIn = false
            if isKeyword(peek, "not"), at + 1 < tokens.count, isKeyword(tokens[at + 1].0, "in") { at += 1; negatedIn = true }
            if isKeyword(peek, "in") {
                at += 1
                guard case .lparen = next() else { throw ExprError(message: "expected '(' after 'in'", offset: tokens[at - 1].1) }
                var items: [Expr] = [try or()]
                while case .comma = peek { at += 1; items.append(try or()) }
                guard case .rparen = next() else { throw ExprError(message: "expected ')' to close the list", offset: tokens[at - 1].1) }
                let e = Expr.inList(left, items)
                return negatedIn ? .unary("not", e) : e
            }
            return left
        }

        mutating func additive() throws(ExprError) -> Expr {
            var e = try multiplicative()
            while case .op(let o) = peek, ["+", "-", "||"].contains(o) { at += 1; e = .binary(o, e, try multiplicative()) }
            return e
        }

        mutating func multiplicative() throws(ExprError) -> Expr {
            var e = try unary()
            while case .op(let o) = peek, ["*", "/", "%"].contains(o) { at += 1; e = .binary(o, e, try unary()) }
            return e
        }

        mutating func unary() throws(ExprError) -> Expr {
            if case .op("-") = peek {
                at += 1
                try nest()
                defer { nesting -= 1 }
                return .unary("-", try unary())
            }
            return try primary()
        }

        mutating func primary() throws(ExprError) -> Expr {
            let start = offset
            try nest()
            defer { nesting -= 1 }
            switch next() {
            case .number(let n):
                if let i = Int64(n) { return .literal(.int(i)) }
                guard let d = Double(n) else { throw ExprError(message: "'\(n)' is not a number", offset: start) }
                return .literal(.double(d))
            case .string(let s): return .literal(.text(s))
            case .lparen:
                let e = try or()
                guard case .rparen = next() else { throw ExprError(message: "expected ')'", offset: tokens[at - 1].1) }
                return e
            case .ident(let name):
                switch name.lowercased() {
                case "true": return .literal(.bool(true))
                case "false": return .literal(.bool(false))
                case "null": return .literal(.null)
                default: break
                }
                guard case .lparen = peek else { return .field(name) }
                at += 1
                var args: [Expr] = []
                if case .rparen = peek { at += 1; return .call(name.lowercased(), args) }
                args.append(try or())
                while case .comma = peek { at += 1; args.append(try or()) }
                guard case .rparen = next() else { throw ExprError(message: "expected ')' after the arguments of \(name)", offset: tokens[at - 1].1) }
                return .call(name.lowercased(), args)
            case let t:
                throw ExprError(message: "expected a value, found \(describe(t))", offset: start)
            }
        }
    }
}

/// Why an expression does not type-check.
public struct ExprTypeError: Error, Sendable, Equatable, ExpressibleByStringInterpolation {
    public var message: String
    public init(_ message: String) { self.message = message }
    public init(stringLiteral value: String) { message = value }
    public init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
}

/// Type checking against the fields known at that point of a pipeline (nil: any field).
public enum ExprChecker {
    /// Functions: name → (argument count range, check of argument types, result type).
    static func function(_ name: String, _ args: [EType]) -> Result<EType, ExprTypeError> {
        func need(_ n: ClosedRange<Int>) -> String? { n.contains(args.count) ? nil : "\(name) takes \(n.lowerBound == n.upperBound ? "\(n.lowerBound)" : "\(n.lowerBound) to \(n.upperBound)") argument\(n.upperBound == 1 ? "" : "s"), not \(args.count)" }
        func texts(_ idx: [Int]) -> String? { idx.first { args[$0] != .null && !args[$0].isText }.map { "argument \($0 + 1) of \(name) must be text, not \(args[$0].rawValue)" } }
        func numbers(_ idx: [Int]) -> String? { idx.first { args[$0] != .null && !args[$0].isNumeric }.map { "argument \($0 + 1) of \(name) must be a number, not \(args[$0].rawValue)" } }
        switch name {
        case "lower", "upper", "trim":
            if let e = need(1...1) ?? texts([0]) { return .failure(ExprTypeError(e)) }
            return .success(.text)
        case "length":
            if let e = need(1...1) ?? texts([0]) { return .failure(ExprTypeError(e)) }
            return .success(.int)
        case "substr":
            if let e = need(2...3) ?? texts([0]) ?? numbers(Array(1..<args.count)) { return .failure(ExprTypeError(e)) }
            return .success(.text)
        case "replace":
            if let e = need(3...3) ?? texts([0, 1, 2]) { return .failure(ExprTypeError(e)) }
            return .success(.text)
        case "starts_with", "ends_with", "contains":
            if let e = need(2...2) ?? texts([0, 1]) { return .failure(ExprTypeError(e)) }
            return .success(.bool)
        case "concat":
            if args.isEmpty { return .failure("concat takes at least 1 argument") }
            return .success(.text)
        case "coalesce":
            if args.isEmpty { return .failure("coalesce takes at least 1 argument") }
            let known = args.filter { $0 != .null && $0 != .any }
            if let first = known.first, !known.allSatisfy({ $0 == first || ($0.isNumeric && first.isNumeric) }) {
                return .failure("the arguments of coalesce must share a type (\(known.map(\.rawValue).joined(separator: ", ")))")
            }
            return .success(known.first ?? .any)
        case "abs":
            if let e = need(1...1) ?? numbers([0]) { return .failure(ExprTypeError(e)) }
            return .success(args[0] == .int ? .int : args[0] == .any ? .any : .float)
        case "round":
            if let e = need(1...2) ?? numbers(Array(0..<args.count)) { return .failure(ExprTypeError(e)) }
            return .success(args.count == 1 ? .int : .float)
        case "to_number":
            if let e = need(1...2) ?? texts(Array(0..<args.count)) { return .failure(ExprTypeError(e)) }
            return .success(.float)
        case "dms_to_degrees":
            if let e = need(1...1) ?? texts([0]) { return .failure(ExprTypeError(e)) }
            return .success(.float)
        case "to_date":
            if let e = need(2...2) ?? texts([0, 1]) { return .failure(ExprTypeError(e)) }
            return .success(.text)
        case "if":
            if let e = need(3...3) { return .failure(ExprTypeError(e)) }
            if !args[0].isBool && args[0] != .null { return .failure("the condition of if must be true or false, not \(args[0].rawValue)") }
            return .success(args[1] == .null || args[1] == .any ? args[2] : args[1])
        default:
            return .failure("unknown function \(name) (lower, upper, trim, length, substr, replace, starts_with, ends_with, contains, concat, coalesce, abs, round, if, to_number, dms_to_degrees, to_date)")
        }
    }

    /// The type of `e`, or why it is wrong. `fields` maps known field names to their types;
    /// nil means the fields are not known (any name is accepted as `any`).
    public static func type(_ e: Expr, fields: [String: EType]?) -> Result<EType, ExprTypeError> {
        type(e, known: fields ?? [:], open: fields == nil)
    }

    /// The type of `e` where `known` fields have types and, when `open`, any other name is
    /// a field of unknown type (`any`).
    public static func type(_ e: Expr, known fields: [String: EType], open: Bool) -> Result<EType, ExprTypeError> {
        switch e {
        case .literal(let v):
            switch v {
            case .null: return .success(.null)
            case .bool: return .success(.bool)
            case .int: return .success(.int)
            case .double: return .success(.float)
            case .text: return .success(.text)
            }
        case .slot: return .success(.any)
        case .field(let name):
            if let t = fields[name] { return .success(t) }
            guard !open else { return .success(.any) }
            guard let t = fields[name] else {
                return .failure("no field '\(name)' here\(Suggestion.hint(for: name, in: fields.keys)) (fields: \(fields.keys.sorted().joined(separator: ", ")))")
            }
            return .success(t)
        case .unary(let op, let x):
            return type(x, known: fields, open: open).flatMap { t in
                if op == "not" { return t.isBool || t == .null ? .success(.bool) : .failure("not needs true or false, not \(t.rawValue)") }
                return t.isNumeric || t == .null ? .success(t == .null ? .null : t) : .failure("- needs a number, not \(t.rawValue)")
            }
        case .isNull(let x, _):
            return type(x, known: fields, open: open).map { _ in .bool }
        case .inList(let x, let items):
            return type(x, known: fields, open: open).flatMap { t in
                for item in items {
                    switch type(item, known: fields, open: open) {
                    case .failure(let m): return .failure(m)
                    case .success(let u): if let m = comparable(t, u) { return .failure(ExprTypeError(m)) }
                    }
                }
                return .success(.bool)
            }
        case .binary(let op, let l, let r):
            let lt: EType, rt: EType
            switch (type(l, known: fields, open: open), type(r, known: fields, open: open)) {
            case (.failure(let m), _), (_, .failure(let m)): return .failure(m)
            case (.success(let a), .success(let b)): (lt, rt) = (a, b)
            }
            switch op {
            case "and", "or":
                guard (lt.isBool || lt == .null) && (rt.isBool || rt == .null) else { return .failure("\(op) needs true or false on both sides, not \(lt.rawValue) and \(rt.rawValue)") }
                return .success(.bool)
            case "=", "!=", "<", "<=", ">", ">=":
                if let m = comparable(lt, rt) { return .failure(ExprTypeError(m)) }
                return .success(.bool)
            case "||":
                return .success(.text)
            default:  // + - * / %
                guard (lt.isNumeric || lt == .null) && (rt.isNumeric || rt == .null) else {
                    return .failure("\(op) needs numbers, not \(lt.rawValue) and \(rt.rawValue)\(lt == .text || rt == .text ? " (cast the field first, or use || to join text)" : "")")
                }
                if lt == .any || rt == .any { return .success(.any) }
                return .success(op == "/" || lt == .float || rt == .float ? .float : .int)
            }
        case .fn(let f, let args):
            return type(.call(f.rawValue, args), known: fields, open: open)
        case .op(let o, let l, let r):
            return type(.binary(o.rawValue, l, r), known: fields, open: open)
        case .call(let name, let args):
            var types: [EType] = []
            for a in args {
                switch type(a, known: fields, open: open) {
                case .failure(let m): return .failure(m)
                case .success(let t): types.append(t)
                }
            }
            return function(name, types)
        }
    }

    static func comparable(_ a: EType, _ b: EType) -> String? {
        if a == .any || b == .any || a == .null || b == .null || a == b { return nil }
        if a.isNumeric && b.isNumeric { return nil }
        return "cannot compare \(a.rawValue) with \(b.rawValue) (cast the field first)"
    }
}

/// Why a value could not be computed (an integer that overflows int64, a float that does not
/// convert): the row is rejected with this reason. Division by zero is not an error (null, as in SQL).
public struct ExprFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func overflow(_ what: String) -> ExprFailure { ExprFailure("\(what) does not fit in int64") }
}

/// A binary operator of the expression language, by how it is written.
public enum BinaryOp: String, Sendable, CaseIterable {
    case and, or, concat = "||", eq = "=", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    case add = "+", sub = "-", mul = "*", div = "/", mod = "%"
}

/// A function of the expression language, by the name it is called with.
public enum ExprFunction: String, Sendable, CaseIterable {
    case lower, upper, trim, length, substr, replace, contains, abs, round, concat, coalesce
    case toNumber = "to_number", dmsToDegrees = "dms_to_degrees", toDate = "to_date"
    case startsWith = "starts_with", endsWith = "ends_with", ifThen = "if"
}

/// Where an expression reads its fields: by name (a dictionary) or by slot (a row's values
/// in field order, for expressions the transformer resolved once per layout).
protocol ExprRow {
    func value(named name: String) -> EValue
    func value(at slot: Int) -> EValue
}

extension Dictionary: ExprRow where Key == String, Value == EValue {
    func value(named name: String) -> EValue { self[name] ?? .null }
    func value(at slot: Int) -> EValue { .null }
}

extension Array: ExprRow where Element == EValue {
    func value(named name: String) -> EValue { .null }
    func value(at slot: Int) -> EValue { slot >= 0 && slot < count ? self[slot] : .null }
}

/// Evaluates an expression over one row. Every operation is checked: a result that does not
/// fit throws ``ExprFailure`` (the caller rejects the row), it never traps.
public enum ExprEvaluator {
    public static func eval(_ e: Expr, _ row: [String: EValue]) throws(ExprFailure) -> EValue { try eval(e, row: row) }

    /// Evaluates over a row whose fields were resolved to slots (``Expr/slot(_:)``).
    public static func eval(_ e: Expr, slots: [EValue]) throws(ExprFailure) -> EValue { try eval(e, row: slots) }

    static func eval<R: ExprRow>(_ e: Expr, row: R) throws(ExprFailure) -> EValue {
        switch e {
        case .literal(let v): return v
        case .field(let name): return row.value(named: name)
        case .slot(let i): return row.value(at: i)
        case .unary(let op, let x):
            let v = try eval(x, row: row)
            if op == "not" { if case .bool(let b) = v { return .bool(!b) }; return .null }
            switch v {
            case .int(let i):
                let (r, o) = Int64(0).subtractingReportingOverflow(i)
                if o { throw .overflow("-(\(i))") }
                return .int(r)
            default: return v.number.map { .double(-$0) } ?? .null
            }
        case .isNull(let x, let negated):
            let isNull = try eval(x, row: row) == .null
            return .bool(negated ? !isNull : isNull)
        case .inList(let x, let items):
            let v = try eval(x, row: row)
            if v == .null { return .null }
            for item in items where compare(v, try eval(item, row: row)) == 0 { return .bool(true) }
            return .bool(false)
        case .op(let o, let l, let r):
            return try binary(o, l, r, row: row)
        case .binary(let op, let l, let r):
            if let o = BinaryOp(rawValue: op) { return try binary(o, l, r, row: row) }
            _ = try eval(l, row: row)  // an operator the parser never makes: null
            _ = try eval(r, row: row)
            return .null
        case .fn(let f, let args):
            return try call(f, args, row: row)
        case .call(let name, let args):
            if let f = ExprFunction(rawValue: name) { return try call(f, args, row: row) }
            for a in args { _ = try eval(a, row: row) }  // a function the checker would have refused: null
            return .null
        }
    }

    static func binary<R: ExprRow>(_ op: BinaryOp, _ l: Expr, _ r: Expr, row: R) throws(ExprFailure) -> EValue {
        let a = try eval(l, row: row)
        if op == .and || op == .or {
            let isAnd = op == .and
            if case .bool(let x) = a, x != isAnd { return .bool(x) }  // false and …, true or …
            let b = try eval(r, row: row)
            if case .bool(let y) = b, y != isAnd { return .bool(y) }
            if a == .null || b == .null { return .null }
            return .bool(isAnd)
        }
        let b = try eval(r, row: row)
        if a == .null || b == .null { return .null }
        switch op {
        case .concat: return .text((a.text ?? "") + (b.text ?? ""))
        case .eq: return compare(a, b).map { .bool($0 == 0) } ?? .null
        case .ne: return compare(a, b).map { .bool($0 != 0) } ?? .null
        case .lt: return compare(a, b).map { .bool($0 < 0) } ?? .null
        case .le: return compare(a, b).map { .bool($0 <= 0) } ?? .null
        case .gt: return compare(a, b).map { .bool($0 > 0) } ?? .null
        case .ge: return compare(a, b).map { .bool($0 >= 0) } ?? .null
        default: return try arithmetic(op, a, b)
        }
    }

    static func call<R: ExprRow>(_ f: ExprFunction, _ args: [Expr], row: R) throws(ExprFailure) -> EValue {
        switch f {
        case .ifThen where args.count == 3:
            // Only the branch taken is evaluated (as SQL's CASE): `if(x > 0, 1 / x, 0)` never fails on x = 0.
            return try eval(args[try eval(args[0], row: row) == .bool(true) ? 1 : 2], row: row)
        case .coalesce:
            for a in args { let v = try eval(a, row: row); if v != .null { return v } }
            return .null
        default:
            // The arguments' values on the stack: a call allocates nothing of its own.
            return try withUnsafeTemporaryAllocation(of: EValue.self, capacity: args.count) { (values) throws(ExprFailure) -> EValue in
                var made = 0
                defer { values.baseAddress?.deinitialize(count: made) }
                for a in args {
                    (values.baseAddress! + made).initialize(to: try eval(a, row: row))
                    made += 1
                }
                return try call(f, UnsafeBufferPointer(values))
            }
        }
    }

    /// Is a condition met (null counts as not met).
    public static func isTrue(_ e: Expr, _ row: [String: EValue]) throws(ExprFailure) -> Bool { try eval(e, row: row) == .bool(true) }
    public static func isTrue(_ e: Expr, slots: [EValue]) throws(ExprFailure) -> Bool { try eval(e, row: slots) == .bool(true) }

    static func compare(_ a: EValue, _ b: EValue) -> Int? {
        switch (a, b) {
        case (.text(let x), .text(let y)): return x < y ? -1 : x == y ? 0 : 1
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        default:
            guard let x = a.number, let y = b.number else { return nil }
            return x < y ? -1 : x == y ? 0 : 1
        }
    }

    /// `+ - * / %`: integers stay integers (an overflow is an error, as in PostgreSQL), `/` and
    /// anything with a float is float; a zero divisor gives null.
    static func arithmetic(_ op: BinaryOp, _ a: EValue, _ b: EValue) throws(ExprFailure) -> EValue {
        if op != .div, case .int(let x) = a, case .int(let y) = b {
            let r: (partialValue: Int64, overflow: Bool)
            switch op {
            case .add: r = x.addingReportingOverflow(y)
            case .sub: r = x.subtractingReportingOverflow(y)
            case .mul: r = x.multipliedReportingOverflow(by: y)
            case .mod:
                if y == 0 { return .null }
                r = y == -1 ? (0, false) : x.remainderReportingOverflow(dividingBy: y)  // Int64.min % -1 is 0
            default: return .null
            }
            if r.overflow { throw .overflow("\(x) \(op.rawValue) \(y)") }
            return .int(r.partialValue)
        }
        guard let x = a.number, let y = b.number else { return .null }
        switch op {
        case .add: return .double(x + y)
        case .sub: return .double(x - y)
        case .mul: return .double(x * y)
        case .div: return y == 0 ? .null : .double(x / y)
        case .mod: return y == 0 ? .null : .double(x.truncatingRemainder(dividingBy: y))
        default: return .null
        }
    }

    static func call(_ f: ExprFunction, _ a: UnsafeBufferPointer<EValue>) throws(ExprFailure) -> EValue {
        // `if` and `coalesce` are evaluated lazily in `eval`. The checker fixed the argument
        // counts; a call that slipped past it is null, not a trap.
        if f == .concat { return .text(a.compactMap(\.text).joined()) }
        if a.contains(.null) { return .null }
        func text(_ i: Int) -> String { i < a.count ? a[i].text ?? "" : "" }
        guard let first = a.first else { return .null }
        switch f {
        case .lower: return .text(text(0).lowercased())
        case .upper: return .text(text(0).uppercased())
        case .trim: return .text(EValue.trim(text(0)))
        case .length: return .int(Int64(text(0).count))
        case .substr:
            guard a.count >= 2, let from = a[1].integer else { return .null }
            let s = Array(text(0))
            // 1-based, as in SQL; clamped so that extreme arguments cannot overflow.
            let start = from <= 1 ? 0 : Int(min(from - 1, Int64(s.count)))
            let count = a.count > 2 ? Int(max(0, min(a[2].integer ?? 0, Int64(s.count)))) : s.count
            guard start < s.count else { return .text("") }
            return .text(String(s[start..<min(s.count, start + count)]))
        case .replace: return .text(EValue.replace(text(0), text(1), text(2)))
        case .toNumber:
            // `2,2959` with decimal ','; `1.234,5` with thousands '.' is not taken apart here.
            var decimal = UInt8(ascii: ".")
            if a.count > 1 {
                guard let sep = text(1).utf8.first, text(1).utf8.count == 1 else { throw ExprFailure("to_number: the decimal separator is one character, not '\(text(1))'") }
                decimal = sep
            }
            if case .double(let v) = first, v.isFinite { return .double(v) }  // a number already (a parse capture made one)
            guard let v = toNumber(text(0), decimal: decimal), v.isFinite else { throw ExprFailure("to_number: '\(SourceLocation.excerpt(text(0)))' is not a number") }
            return .double(v)
        case .dmsToDegrees:
            guard let v = Degrees.parse(text(0)) else { throw ExprFailure("dms_to_degrees: '\(SourceLocation.excerpt(text(0)))' is not degrees, minutes and seconds (30°02′59″S)") }
            return .double(v)
        case .toDate:
            let f: DateFormat
            do { f = try DateFormat(text(1)) } catch { throw ExprFailure("to_date: \(error.message)") }
            var out: [UInt8] = []
            let raw = Array(text(0).utf8)
            guard raw.withUnsafeBytes({ f.normalize($0, into: &out) }), out.withUnsafeBytes({ Coercion.parseTimestamp($0) }) != nil else {
                throw ExprFailure("to_date: '\(SourceLocation.excerpt(text(0)))' is not a date written \(text(1))")
            }
            return .text(String(decoding: out, as: UTF8.self))
        case .startsWith: return .bool(text(0).hasPrefix(text(1)))
        case .endsWith: return .bool(text(0).hasSuffix(text(1)))
        case .contains: return .bool(text(0).contains(text(1)))
        case .abs:
            if case .int(let i) = first {
                guard i != .min else { throw .overflow("abs(\(i))") }
                return .int(abs(i))
            }
            return first.number.map { .double(abs($0)) } ?? .null
        case .round:
            guard let x = first.number else { return .null }
            if a.count == 1 {
                guard let i = Int64(exactly: x.rounded()) else { throw .overflow("round(\(ValueText.double(x)))") }
                return .int(i)
            }
            let p = pow10(a[1].integer ?? 0)
            return .double((x * p).rounded() / p)
        case .concat, .coalesce, .ifThen: return .null
        }
    }

    /// `s` (spaces around it ignored) as a number whose decimal separator is `decimal`, read by
    /// the loads' own number parser with no String in between; nil when it is not one.
    static func toNumber(_ s: String, decimal: UInt8) -> Double? {
        var s = s
        return s.withUTF8 { toNumber(UnsafeRawBufferPointer($0), decimal: decimal) }
    }

    /// `to_number` of text's bytes (a `parse` capture read only by `to_number` is made here).
    static func toNumber(_ raw: UnsafeRawBufferPointer, decimal: UInt8) -> Double? {
        // Spaces, tabs and line ends around it, as ``EValue/trim(_:)``.
        var lo = 0, hi = raw.count
        while lo < hi, EValue.isBlank(raw[lo]) { lo += 1 }
        while hi > lo, EValue.isBlank(raw[hi - 1]) { hi -= 1 }
        let trimmed = UnsafeRawBufferPointer(rebasing: raw[lo..<hi])
        if decimal == UInt8(ascii: ".") { return Coercion.parseDouble(trimmed) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, trimmed.count)) { out -> Double? in
            for (i, b) in trimmed.enumerated() {
                // The other separator is not a decimal point here.
                if b == UInt8(ascii: ".") { return nil }
                out[i] = b == decimal ? UInt8(ascii: ".") : b
            }
            return Coercion.parseDouble(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[0..<trimmed.count]))
        }
    }

    /// 10^n for n in 0...15 (clamped).
    static func pow10(_ n: Int64) -> Double {
        var r = 1.0
        for _ in 0..<min(max(n, 0), 15) { r *= 10 }
        return r
    }
}
