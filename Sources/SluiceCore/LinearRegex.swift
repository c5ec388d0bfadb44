#if canImport(Glibc)
import Glibc
#endif

/// Regular expressions that run in time linear in the text on any input (a Pike VM over a
/// compiled NFA, as RE2 and Rust's `regex` do): no backtracking, so `(a+)+$` on a long line
/// cannot blow up. The syntax is the common subset: literals, `.`, classes (`[a-z]`, `[^,]`,
/// `\d \w \s` and their negations), anchors `^ $`, groups `( )`, `(?: )`, named captures
/// `(?<name> )`, alternation `|`, and greedy or lazy `* + ? {m} {m,} {m,n}`.
public struct LinearRegex: Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    /// Capture names in group order (unnamed groups capture nothing).
    public private(set) var names: [String]
    /// The compiled program, behind one reference: a copy of the regex (a closure's capture,
    /// an array's element) is then a retain or two, not one per table.
    private(set) var compiled: Compiled

    final class Compiled: Sendable {
        let program: [Inst]
        let slots: Int
        /// Per instruction, a superset of the bytes a match can go on with from there (every
        /// byte where it may match without consuming one): `backtrack` skips the alternatives
        /// the next byte rules out, so a pattern that never needs to look back (`\d+\.\d+`,
        /// `\S+ +`) runs without a stack.
        let firsts: [ByteSet]
        /// Each `split`'s ordinal among the splits (-1 for other instructions): `backtrack` marks
        /// only the states at splits, where paths meet again, in a bitset that many rows tall.
        let splitOrdinal: [Int]
        let splitCount: Int
        /// The program as plain values for the bit-state search: no enum payload (a class's
        /// ranges) is copied per byte. Sets test ASCII bytes in ``asciiSets``; others decode.
        let code: [Code]
        let sets: [CharSet]
        let asciiSets: [ByteSet]
        /// Per instruction: whether it is the split of a greedy one-character loop (`L: split
        /// L+1, L+3; X; jump L`) that nothing after it can start with, so that the only match
        /// takes as many X as there are, and the search runs them in a tight loop.
        let span: [Bool]
        let literals: [UInt8]
        /// The search's tables again, in memory of their own: lending them to a match costs no
        /// retain of each array (two patterns a record made that a tenth of parsing it).
        let tables: Tables

        init(program: [Inst], slots: Int, firsts: [ByteSet], splitOrdinal: [Int], splitCount: Int, code: [Code],
             sets: [CharSet], asciiSets: [ByteSet], span: [Bool], literals: [UInt8]) {
            let wide = sets.map { cs in
                cs.negated ? cs.ranges.allSatisfy { $0.upperBound < 0x800 } : cs.ranges.contains { $0.lowerBound <= 0x800 && $0.upperBound >= 0x10FFFF }
            }
            tables = Tables(code: Tables.own(code), firsts: Tables.own(firsts), ordinal: Tables.own(splitOrdinal), ascii: Tables.own(asciiSets),
                            literals: Tables.own(literals), sets: Tables.own(sets), span: Tables.own(span), wide: Tables.own(wide))
            self.program = program
            self.slots = slots
            self.firsts = firsts
            self.splitOrdinal = splitOrdinal
            self.splitCount = splitCount
            self.code = code
            self.sets = sets
            self.asciiSets = asciiSets
            self.span = span
            self.literals = literals
        }

        deinit { tables.free() }
    }

    /// The same regex with tables of its own (fresh buffers): a step thread matches with
    /// it without touching reference counts another thread touches.
    func privateCopy() -> LinearRegex {
        let c = compiled
        var copy = self
        copy.compiled = Compiled(program: c.program.map { $0 }, slots: c.slots, firsts: c.firsts.map { $0 }, splitOrdinal: c.splitOrdinal.map { $0 },
                                 splitCount: c.splitCount, code: c.code.map { $0 }, sets: c.sets.map { $0 }, asciiSets: c.asciiSets.map { $0 },
                                 span: c.span.map { $0 }, literals: c.literals.map { $0 })
        copy.names = names.map { $0 }
        return copy
    }

    var program: [Inst] { compiled.program }
    var slots: Int { compiled.slots }
    var firsts: [ByteSet] { compiled.firsts }
    var splitOrdinal: [Int] { compiled.splitOrdinal }
    var splitCount: Int { compiled.splitCount }
    var code: [Code] { compiled.code }
    var sets: [CharSet] { compiled.sets }
    var asciiSets: [ByteSet] { compiled.asciiSets }
    var span: [Bool] { compiled.span }
    var literals: [UInt8] { compiled.literals }

    struct Code: Sendable {
        /// `literal`: the `b` ASCII bytes at `a` in ``literals``, standing for that many `byte`
        /// instructions (none of which is a jump's target but the first).
        enum Op: UInt8, Sendable { case byte, literal, scalar, any, set, split, jump, save, lineStart, lineEnd, match }
        var op: Op
        var a: Int = 0
        var b: Int = 0
    }

    /// The largest compiled program: bounded repetitions (`{1000}`) expand, so they are capped.
    static let maxInstructions = 20_000

    public static func == (a: LinearRegex, b: LinearRegex) -> Bool { a.pattern == b.pattern }
    public var description: String { pattern }

    enum Inst: Sendable {
        case scalar(Unicode.Scalar)
        case any
        case set(CharSet)
        case split(Int, Int)
        case jump(Int)
        case save(Int)
        case lineStart, lineEnd
        case match
    }

    /// A set of byte values.
    struct ByteSet: Sendable, Equatable {
        var w: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        static var all: ByteSet { ByteSet(w: (~0, ~0, ~0, ~0)) }
        static func == (a: ByteSet, b: ByteSet) -> Bool { a.w == b.w }
        @inline(__always) func contains(_ b: UInt8) -> Bool {
            let bit = UInt64(1) << UInt64(b & 63)
            switch b >> 6 {
            case 0: return w.0 & bit != 0
            case 1: return w.1 & bit != 0
            case 2: return w.2 & bit != 0
            default: return w.3 & bit != 0
            }
        }
        mutating func insert(_ b: UInt8) {
            let bit = UInt64(1) << UInt64(b & 63)
            switch b >> 6 {
            case 0: w.0 |= bit
            case 1: w.1 |= bit
            case 2: w.2 |= bit
            default: w.3 |= bit
            }
        }
        func union(_ o: ByteSet) -> ByteSet { ByteSet(w: (w.0 | o.w.0, w.1 | o.w.1, w.2 | o.w.2, w.3 | o.w.3)) }
    }

    /// The bytes instruction `inst` can take first (its scalar's first UTF-8 byte), nil for
    /// one that consumes nothing.
    static func firstBytes(_ inst: Inst) -> ByteSet? {
        var set = ByteSet()
        switch inst {
        case .scalar(let s):
            set.insert(String(s).utf8.first ?? 0)
        case .any:
            set = .all
            set.w.0 &= ~(UInt64(1) << 0x0A)
        case .set(let cs):
            // ASCII exactly; every byte of a longer encoding (a superset).
            for b in UInt8(0)..<0x80 where cs.contains(Unicode.Scalar(b)) { set.insert(b) }
            if cs.negated || cs.ranges.contains(where: { $0.upperBound >= 0x80 }) { for b in UInt8(0x80)...0xFF { set.insert(b) } }
        default:
            return nil
        }
        return set
    }

    /// ``firsts`` of `program`, grown to a fixed point (loops jump back).
    static func firsts(of program: [Inst]) -> [ByteSet] {
        var f = [ByteSet](repeating: ByteSet(), count: program.count)
        var changed = true
        while changed {
            changed = false
            for pc in program.indices.reversed() {
                let next: ByteSet
                switch program[pc] {
                case .scalar, .any, .set: next = firstBytes(program[pc])!
                case .split(let a, let b): next = f[a].union(f[b])
                case .jump(let t): next = f[t]
                case .save, .lineStart: next = f[pc + 1]
                case .lineEnd, .match: next = .all
                }
                if next != f[pc] { f[pc] = next; changed = true }
            }
        }
        return f
    }

    /// A character class: ranges of scalars, possibly negated.
    struct CharSet: Sendable {
        var ranges: [ClosedRange<UInt32>]
        var negated: Bool
        func contains(_ s: Unicode.Scalar) -> Bool {
            let v = s.value
            var hit = false
            for r in ranges where r.contains(v) { hit = true; break }
            return hit != negated
        }
        static let digit = CharSet(ranges: [0x30...0x39], negated: false)
        static let word = CharSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A], negated: false)
        static let space = CharSet(ranges: [0x09...0x0D, 0x20...0x20, 0xA0...0xA0], negated: false)
    }

    indirect enum Node {
        case empty
        case scalar(Unicode.Scalar)
        case any
        case set(CharSet)
        case concat([Node])
        case alternate([Node])
        case repeated(Node, min: Int, max: Int?, greedy: Bool)
        case group(Node, capture: Int?)
        case lineStart, lineEnd
    }

    public init(_ pattern: String) throws(SluiceError) {
        var parser = Parser(scalars: Array(pattern.unicodeScalars), pattern: pattern)
        let node = try parser.parseAlternation()
        if parser.at < parser.scalars.count { throw parser.fail("unbalanced ')'") }
        var program: [Inst] = [.save(0)]
        try Self.compile(node, into: &program, pattern: pattern)
        program.append(.save(1))
        program.append(.match)
        self.pattern = pattern
        self.names = parser.names
        let firsts = Self.firsts(of: program)
        var ordinal = [Int](repeating: -1, count: program.count), n = 0
        for (pc, inst) in program.enumerated() { if case .split = inst { ordinal[pc] = n; n += 1 } }
        var sets: [CharSet] = []
        var code = program.map { inst -> Code in
            switch inst {
            case .scalar(let s): return s.value < 0x80 ? Code(op: .byte, a: Int(s.value)) : Code(op: .scalar, a: Int(s.value))
            case .any: return Code(op: .any)
            case .set(let cs):
                sets.append(cs)
                return Code(op: .set, a: sets.count - 1)
            case .split(let a, let b): return Code(op: .split, a: a, b: b)
            case .jump(let t): return Code(op: .jump, a: t)
            case .save(let slot): return Code(op: .save, a: slot)
            case .lineStart: return Code(op: .lineStart)
            case .lineEnd: return Code(op: .lineEnd)
            case .match: return Code(op: .match)
            }
        }
        let asciiSets = sets.map { cs in
            var set = ByteSet()
            for b in UInt8(0)..<0x80 where cs.contains(Unicode.Scalar(b)) { set.insert(b) }
            return set
        }
        // Runs of ASCII literals no jump lands inside become one comparison.
        var targets = Set<Int>()
        for inst in program {
            if case .split(let a, let b) = inst { targets.formUnion([a, b]) }
            if case .jump(let t) = inst { targets.insert(t) }
        }
        var literals: [UInt8] = []
        var pc = 0
        while pc < code.count {
            var end = pc
            while end < code.count, code[end].op == .byte, end == pc || !targets.contains(end) { end += 1 }
            if end - pc > 1 {
                code[pc] = Code(op: .literal, a: literals.count, b: end - pc)
                literals += program[pc..<end].map { if case .scalar(let s) = $0 { UInt8(s.value) } else { 0 } }
            }
            pc = max(end, pc + 1)
        }
        let span = program.indices.map { pc in
            guard case .split(let a, let b) = program[pc], a == pc + 1, b == pc + 3, b < program.count,
                  case .jump(pc) = program[pc + 2], let body = Self.firstBytes(program[pc + 1]) else { return false }
            let after = firsts[b]
            return body.w.0 & after.w.0 == 0 && body.w.1 & after.w.1 == 0 && body.w.2 & after.w.2 == 0 && body.w.3 & after.w.3 == 0
        }
        compiled = Compiled(program: program, slots: 2 * (parser.names.count + 1), firsts: firsts, splitOrdinal: ordinal, splitCount: n,
                            code: code, sets: sets, asciiSets: asciiSets, span: span, literals: literals)
    }

    /// The named captures of the leftmost match in `text` (a group that did not take part is
    /// absent), or nil when there is no match.
    public func match(_ text: String) -> [String: String]? {
        var text = text
        return text.withUTF8 { bytes -> [String: String]? in
            guard let caps = run(bytes) else { return nil }
            var out: [String: String] = [:]
            for (i, name) in names.enumerated() {
                let a = caps[2 * (i + 1)], b = caps[2 * (i + 1) + 1]
                if a >= 0, b >= a { out[name] = String(decoding: UnsafeBufferPointer(rebasing: bytes[a..<b]), as: UTF8.self) }
            }
            return out
        }
    }

    /// The text of each capture of the leftmost match in `text`, in ``names`` order (nil for a
    /// group that did not take part), or nil when there is no match.
    public func captures(_ text: String) -> [String?]? {
        var text = text
        return text.withUTF8 { bytes -> [String?]? in
            guard let caps = run(bytes) else { return nil }
            return names.indices.map { i in
                let a = caps[2 * (i + 1)], b = caps[2 * (i + 1) + 1]
                return a >= 0 && b >= a ? String(decoding: UnsafeBufferPointer(rebasing: bytes[a..<b]), as: UTF8.self) : nil
            }
        }
    }

    /// Whether the pattern matches somewhere in `text`.
    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { run($0) != nil }
    }

    /// The scalar at byte `i` of valid UTF-8 and its length.
    @inline(__always) static func scalar(_ t: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int) {
        let b0 = UInt32(t[i])
        if b0 < 0x80 { return (Unicode.Scalar(UInt8(b0)), 1) }
        if b0 < 0xE0, i + 1 < t.count { return (Unicode.Scalar((b0 & 0x1F) << 6 | UInt32(t[i + 1]) & 0x3F) ?? "\u{FFFD}", 2) }
        if b0 < 0xF0, i + 2 < t.count {
            return (Unicode.Scalar((b0 & 0x0F) << 12 | (UInt32(t[i + 1]) & 0x3F) << 6 | UInt32(t[i + 2]) & 0x3F) ?? "\u{FFFD}", 3)
        }
        if i + 3 < t.count {
            let v = (b0 & 0x07) << 18 | (UInt32(t[i + 1]) & 0x3F) << 12 | (UInt32(t[i + 2]) & 0x3F) << 6 | UInt32(t[i + 3]) & 0x3F
            return (Unicode.Scalar(v) ?? "\u{FFFD}", 4)
        }
        return ("\u{FFFD}", 1)
    }

    // MARK: The Pike VM

    struct Thread {
        var pc: Int
        var caps: [Int]
    }

    /// Texts up to this many (program × position) states take the bit-state path.
    static let bitStateLimit = 1 << 22

    /// Leftmost-first match (the priority a backtracking engine would give), in O(text × program).
    func run(_ text: UnsafeBufferPointer<UInt8>) -> [Int]? {
        var scratch = Scratch()
        return run(text, &scratch) ? Array(scratch.caps.prefix(slots)) : nil
    }

    /// Whether the pattern matches; where it did, `scratch.caps` holds the capture offsets
    /// (in its first ``slots``: it may be longer).
    func run(_ text: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch) -> Bool { compiled.run(text, &scratch) }

    /// Buffers a caller keeps from one match to the next (one per thread), so that matching
    /// a record allocates nothing.
    public struct Scratch: Sendable {
        var visited: [UInt64] = []
        var caps: [Int] = []
        var stack: [Job] = []
        public init() {}
    }

    /// Depth-first search in priority order that visits each (split, position) state at most
    /// once (RE2's "bit state", marked only where paths can meet): linear in the text like the
    /// Pike VM, and much faster on the short texts records are, with no thread lists to copy.
    func backtrack(_ text: UnsafeBufferPointer<UInt8>) -> [Int]? {
        var scratch = Scratch()
        return backtrack(text, &scratch) ? Array(scratch.caps.prefix(slots)) : nil
    }

    func backtrack(_ text: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch) -> Bool { compiled.backtrack(text, &scratch) }

    /// The compiled program's tables in memory a ``Compiled`` owns (and frees), for the search.
    /// Sendable: nothing writes them after they are made.
    struct Tables: @unchecked Sendable {
        static func own<T>(_ a: [T]) -> UnsafeBufferPointer<T> {
            let b = UnsafeMutableBufferPointer<T>.allocate(capacity: max(a.count, 1))
            _ = b.initialize(from: a)
            return UnsafeBufferPointer(rebasing: b[0..<a.count])
        }

        func free() {
            func release<T>(_ b: UnsafeBufferPointer<T>) {
                let m = UnsafeMutableBufferPointer(mutating: b)
                m.deinitialize()
                m.baseAddress?.deallocate()
            }
            release(code); release(firsts); release(ordinal); release(ascii); release(literals); release(sets); release(span); release(wide)
        }

        let code: UnsafeBufferPointer<Code>
        let firsts: UnsafeBufferPointer<ByteSet>
        let ordinal: UnsafeBufferPointer<Int>
        let ascii: UnsafeBufferPointer<ByteSet>
        let literals: UnsafeBufferPointer<UInt8>
        let sets: UnsafeBufferPointer<CharSet>
        let span: UnsafeBufferPointer<Bool>
        /// Per set: whether it holds every scalar from U+0800 up (`\S`, `[^,]`), so that a loop
        /// over it steps over a three- or four-byte character by its first byte.
        let wide: UnsafeBufferPointer<Bool>
    }

    enum Job { case state(Int, Int), restore(Int, Int) }

    /// Whether any bit in `lo...hi` is set.
    @inline(__always)
    static func anyMarked(_ bits: UnsafeMutableBufferPointer<UInt64>, _ lo: Int, _ hi: Int) -> Bool {
        var w = lo >> 6
        while w <= hi >> 6 {
            var word = bits[w]
            if w == lo >> 6 { word &= ~0 << UInt64(lo & 63) }
            if w == hi >> 6 { word &= ~0 >> UInt64(63 - hi & 63) }
            if word != 0 { return true }
            w += 1
        }
        return false
    }

    /// Sets the bits `lo...hi`.
    @inline(__always)
    static func mark(_ bits: UnsafeMutableBufferPointer<UInt64>, _ lo: Int, _ hi: Int) {
        var w = lo >> 6
        while w <= hi >> 6 {
            var word: UInt64 = ~0
            if w == lo >> 6 { word &= ~0 << UInt64(lo & 63) }
            if w == hi >> 6 { word &= ~0 >> UInt64(63 - hi & 63) }
            bits[w] |= word
            w += 1
        }
    }

    /// Whether one-character instruction `c` (or a literal run's first byte) takes the text at
    /// `at`; the bytes it spans.
    @inline(__always)
    static func step(_ c: Code, _ text: UnsafeBufferPointer<UInt8>, _ at: Int, _ ascii: UnsafeBufferPointer<ByteSet>,
                     _ literals: UnsafeBufferPointer<UInt8>, _ sets: UnsafeBufferPointer<CharSet>) -> Int? {
        guard at < text.count else { return nil }
        let b = text[at]
        switch c.op {
        case .byte: return b == UInt8(truncatingIfNeeded: c.a) ? 1 : nil
        case .literal: return b == literals[c.a] ? 1 : nil
        case .set:
            if b < 0x80 { return ascii[c.a].contains(b) ? 1 : nil }
            let (s, n) = Self.scalar(text, at)
            return sets[c.a].contains(s) ? n : nil
        case .scalar:
            let (s, n) = Self.scalar(text, at)
            return s.value == c.a ? n : nil
        case .any:
            return b == 0x0A ? nil : b < 0x80 ? 1 : Self.scalar(text, at).1
        default: return nil
        }
    }

    /// The bit-state search over buffers (``backtrack`` lends them): whether `caps` holds a match.
    @inline(__always)
    static func search(_ text: UnsafeBufferPointer<UInt8>, _ t: Tables, _ visited: UnsafeMutableBufferPointer<UInt64>,
                       _ caps: UnsafeMutableBufferPointer<Int>, _ stack: inout [Job]) -> Bool {
        let (code, firsts, ordinal, ascii, literals, sets, span, wide) = (t.code, t.firsts, t.ordinal, t.ascii, t.literals, t.sets, t.span, t.wide)
        let width = text.count + 1
        let end = text.count
        // A pattern that opens with `^` can start only where a line does.
        let lineAnchored = code.count > 1 && code[1].op == .lineStart
        var next = 0
        var tried = false
        while next <= end {
            var start = next
            if lineAnchored {
                if start > 0 && text[start - 1] != 0x0A {
                    guard let nl = memchr(text.baseAddress! + start, 0x0A, end - start) else { break }
                    start = text.baseAddress!.distance(to: nl.assumingMemoryBound(to: UInt8.self)) + 1
                }
            } else {
                // To the next character a match can begin with (never inside a character).
                let first = firsts[0]
                while start < end, !first.contains(text[start]) || text[start] & 0xC0 == 0x80 { start += 1 }
            }
            next = start + 1
            if start < end && !firsts[0].contains(text[start]) { continue }
            // A failed start may leave what it saved with nothing to go back to: clear it.
            if tried { for k in caps.indices { caps[k] = -1 } }
            tried = true
            stack.append(.state(0, start))
            while let job = stack.popLast() {
                guard case .state(var pc, var at) = job else {
                    if case .restore(let slot, let old) = job { caps[slot] = old }
                    continue
                }
                thread: while true {
                    let c = code[pc]
                    switch c.op {
                    case .literal:
                        guard end - at >= c.b else { break thread }
                        for k in 0..<c.b where text[at + k] != literals[c.a + k] { break thread }
                        pc += c.b; at += c.b
                    case .byte:  // the common one-byte cases here, not through `step`
                        guard at < end, text[at] == UInt8(truncatingIfNeeded: c.a) else { break thread }
                        pc += 1; at += 1
                    case .set where at < end && text[at] < 0x80:
                        guard ascii[c.a].contains(text[at]) else { break thread }
                        pc += 1; at += 1
                    case .set, .scalar, .any:
                        guard let n = step(c, text, at, ascii, literals, sets) else { break thread }
                        pc += 1; at += n
                    case .split where span[pc]:
                        // A loop no later byte can continue: take X while it matches. Every
                        // position passed is a state of this split; one searched from before
                        // (and failed, or we would not be here) ends this thread too.
                        let from = at
                        let x = code[pc + 1]
                        if x.op == .set {  // the common loop, with its ASCII set held: a quarter of a record's match time
                            let set = ascii[x.a]
                            while at < end {
                                let byte = text[at]
                                if byte < 0x80 {
                                    guard set.contains(byte) else { break }
                                    at += 1
                                } else if byte >= 0xE0 && wide[x.a] {  // valid UTF-8: the first byte tells the length
                                    at += byte >= 0xF0 ? 4 : 3
                                } else {
                                    guard let n = step(x, text, at, ascii, literals, sets) else { break }
                                    at += n
                                }
                            }
                        } else {
                            while let n = step(x, text, at, ascii, literals, sets) { at += n }
                        }
                        let row = ordinal[pc] * width
                        if Self.anyMarked(visited, row + from, row + at) { break thread }
                        Self.mark(visited, row + from, row + at)
                        pc = c.b
                    case .split:
                        // Each (split, position) once: every loop and every meeting of paths
                        // goes through a split, so the search stays linear in the text.
                        let bit = ordinal[pc] * width + at
                        if visited[bit >> 6] & (1 << UInt64(bit & 63)) != 0 { break thread }
                        visited[bit >> 6] |= 1 << UInt64(bit & 63)
                        // Only the branches the next byte allows, the first one first.
                        guard at < end else { stack.append(.state(c.b, at)); pc = c.a; continue }
                        let byte = text[at]
                        if firsts[c.a].contains(byte) {
                            if firsts[c.b].contains(byte) { stack.append(.state(c.b, at)) }
                            pc = c.a
                        } else if firsts[c.b].contains(byte) {
                            pc = c.b
                        } else {
                            break thread
                        }
                    case .jump: pc = c.a
                    case .save:
                        // With nothing to go back to, the old value is never needed again.
                        if !stack.isEmpty { stack.append(.restore(c.a, caps[c.a])) }
                        caps[c.a] = at
                        pc += 1
                    case .lineStart:
                        guard at == 0 || text[at - 1] == 0x0A else { break thread }
                        pc += 1
                    case .lineEnd:
                        guard at == end || text[at] == 0x0A else { break thread }
                        pc += 1
                    case .match:
                        return true
                    }
                }
            }
        }
        return false
    }

    /// The Pike VM: every thread advanced in lockstep, one position at a time (long texts).
    func pike(_ text: UnsafeBufferPointer<UInt8>) -> [Int]? { compiled.pike(text) }

    // MARK: Compiling

    static func compile(_ node: Node, into p: inout [Inst], pattern: String) throws(SluiceError) {
        if p.count > maxInstructions {
            throw SluiceError(.invalidConfig, "pattern '\(pattern)' is too large once its repetitions are expanded")
        }
        switch node {
        case .empty: break
        case .scalar(let s): p.append(.scalar(s))
        case .any: p.append(.any)
        case .set(let s): p.append(.set(s))
        case .lineStart: p.append(.lineStart)
        case .lineEnd: p.append(.lineEnd)
        case .concat(let parts): for n in parts { try compile(n, into: &p, pattern: pattern) }
        case .group(let inner, let capture):
            if let c = capture { p.append(.save(2 * c)) }
            try compile(inner, into: &p, pattern: pattern)
            if let c = capture { p.append(.save(2 * c + 1)) }
        case .alternate(let options):
            // split L1, next; L1: a; jump end; next: split L2, ... ; last: z
            var jumps: [Int] = []
            for (i, option) in options.enumerated() {
                if i < options.count - 1 {
                    let split = p.count
                    p.append(.split(split + 1, -1))
                    try compile(option, into: &p, pattern: pattern)
                    jumps.append(p.count)
                    p.append(.jump(-1))
                    p[split] = .split(split + 1, p.count)
                } else {
                    try compile(option, into: &p, pattern: pattern)
                }
            }
            for j in jumps { p[j] = .jump(p.count) }
        case .repeated(let inner, let min, let max, let greedy):
            for _ in 0..<min { try compile(inner, into: &p, pattern: pattern) }
            if let max {
                // Each optional copy may be skipped: split body, end.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(p.count)
                    p.append(.split(-1, -1))
                    try compile(inner, into: &p, pattern: pattern)
                }
                for s in splits { p[s] = greedy ? .split(s + 1, p.count) : .split(p.count, s + 1) }
            } else {
                // L: split body, end; body; jump L
                let loop = p.count
                p.append(.split(-1, -1))
                try compile(inner, into: &p, pattern: pattern)
                p.append(.jump(loop))
                p[loop] = greedy ? .split(loop + 1, p.count) : .split(p.count, loop + 1)
            }
        }
    }

    // MARK: Parsing

    struct Parser {
        let scalars: [Unicode.Scalar]
        let pattern: String
        var at = 0
        var names: [String] = []

        func fail(_ why: String) -> SluiceError {
            SluiceError(.invalidConfig, "pattern '\(pattern)': \(why) (at character \(at + 1))")
        }

        var peek: Unicode.Scalar? { at < scalars.count ? scalars[at] : nil }

        mutating func parseAlternation() throws(SluiceError) -> Node {
            var options = [try parseConcat()]
            while peek == "|" {
                at += 1
                options.append(try parseConcat())
            }
            return options.count == 1 ? options[0] : .alternate(options)
        }

        mutating func parseConcat() throws(SluiceError) -> Node {
            var parts: [Node] = []
            while let c = peek, c != "|", c != ")" {
                var atom = try parseAtom()
                atom = try parseQuantifiers(atom)
                parts.append(atom)
            }
            return parts.isEmpty ? .empty : parts.count == 1 ? parts[0] : .concat(parts)
        }

        mutating func parseQuantifiers(_ atom: Node) throws(SluiceError) -> Node {
            var node = atom
            while let c = peek {
                var min = 0, max: Int? = nil
                switch c {
                case "*": at += 1
                case "+": at += 1; min = 1
                case "?": at += 1; max = 1
                case "{":
                    guard let (lo, hi) = try parseBraces() else { return node }
                    (min, max) = (lo, hi)
                default: return node
                }
                if case .lineStart = node { throw fail("nothing to repeat") }
                var greedy = true
                if peek == "?" { at += 1; greedy = false }
                node = .repeated(node, min: min, max: max, greedy: greedy)
            }
            return node
        }

        /// `{m}`, `{m,}`, `{m,n}`; nil (and nothing consumed) when the brace is a literal.
        mutating func parseBraces() throws(SluiceError) -> (Int, Int?)? {
            let start = at
            at += 1
            func number() -> Int? {
                var v = 0, n = 0
                while let c = peek, let d = c.properties.numericType != nil ? Int(String(c)) : nil, n < 6 { v = v * 10 + d; n += 1; at += 1 }
                return n > 0 ? v : nil
            }
            guard let lo = number() else { at = start; return nil }
            var hi: Int? = lo
            if peek == "," {
                at += 1
                hi = number()
            }
            guard peek == "}" else { at = start; return nil }
            at += 1
            if let h = hi, h < lo { throw fail("{\(lo),\(h)} counts down") }
            if lo > 1000 || (hi ?? 0) > 1000 { throw fail("repetition counts above 1000") }
            return (lo, hi)
        }

        mutating func parseAtom() throws(SluiceError) -> Node {
            guard let c = peek else { throw fail("unexpected end") }
            at += 1
            switch c {
            case ".": return .any
            case "^": return .lineStart
            case "$": return .lineEnd
            case "(":
                var capture: Int? = nil
                if peek == "?" {
                    at += 1
                    if peek == ":" {
                        at += 1
                    } else if peek == "<" || peek == "P" {
                        if peek == "P" { at += 1 }
                        guard peek == "<" else { throw fail("expected (?<name>") }
                        at += 1
                        var name = ""
                        while let n = peek, n != ">" {
                            guard n == "_" || n.properties.isAlphabetic || ("0"..."9").contains(n) else { throw fail("a capture name is letters, digits and _") }
                            name.unicodeScalars.append(n)
                            at += 1
                        }
                        guard peek == ">", !name.isEmpty else { throw fail("unterminated capture name") }
                        at += 1
                        if names.contains(name) { throw fail("capture '\(name)' is named twice") }
                        names.append(name)
                        capture = names.count
                    } else {
                        throw fail("only (?: ) and (?<name> ) groups are supported")
                    }
                } else {
                    // An unnamed group groups; it captures nothing the step can name.
                }
                let inner = try parseAlternation()
                guard peek == ")" else { throw fail("missing ')'") }
                at += 1
                return .group(inner, capture: capture)
            case ")": throw fail("unbalanced ')'")
            case "*", "+", "?": throw fail("nothing to repeat")
            case "[": return .set(try parseClass())
            case "\\": return try parseEscape(inClass: false).node
            default: return .scalar(c)
            }
        }

        /// An escape after `\`: a class (`\d`) or a literal scalar.
        mutating func parseEscape(inClass: Bool) throws(SluiceError) -> (node: Node, scalar: Unicode.Scalar?) {
            guard let c = peek else { throw fail("pattern ends with '\\'") }
            at += 1
            switch c {
            case "d": return (.set(.digit), nil)
            case "D": return (.set(CharSet(ranges: CharSet.digit.ranges, negated: true)), nil)
            case "w": return (.set(.word), nil)
            case "W": return (.set(CharSet(ranges: CharSet.word.ranges, negated: true)), nil)
            case "s": return (.set(.space), nil)
            case "S": return (.set(CharSet(ranges: CharSet.space.ranges, negated: true)), nil)
            case "t": return (.scalar("\t"), "\t")
            case "n": return (.scalar("\n"), "\n")
            case "r": return (.scalar("\r"), "\r")
            default:
                if c.properties.isAlphabetic || ("0"..."9").contains(c) { throw fail("unknown escape '\\\(c)'") }
                return (.scalar(c), c)  // an escaped punctuation mark is itself
            }
        }

        mutating func parseClass() throws(SluiceError) -> CharSet {
            var set = CharSet(ranges: [], negated: false)
            if peek == "^" { set.negated = true; at += 1 }
            var first = true
            while let c = peek, c != "]" || first {
                first = false
                at += 1
                var lo: Unicode.Scalar
                if c == "\\" {
                    let e = try parseEscape(inClass: true)
                    guard let s = e.scalar else {
                        if case .set(let inner) = e.node {
                            // \d, \w, \s inside a class add their ranges (negated ones are refused).
                            guard !inner.negated else { throw fail("\\D, \\W and \\S cannot be inside [ ]") }
                            set.ranges += inner.ranges
                        }
                        continue
                    }
                    lo = s
                } else {
                    lo = c
                }
                if peek == "-", at + 1 < scalars.count, scalars[at + 1] != "]" {
                    at += 1
                    guard var hi = peek else { throw fail("unterminated range") }
                    at += 1
                    if hi == "\\" {
                        guard let s = try parseEscape(inClass: true).scalar else { throw fail("a class cannot end a range") }
                        hi = s
                    }
                    guard lo.value <= hi.value else { throw fail("range \(lo)-\(hi) is backwards") }
                    set.ranges.append(lo.value...hi.value)
                } else {
                    set.ranges.append(lo.value...lo.value)
                }
            }
            guard peek == "]" else { throw fail("missing ']'") }
            at += 1
            return set
        }
    }
}

/// The matching itself lives with the compiled program: a caller holding only that (a parse
/// step's patterns) retains one object per match, not a regex's three.
extension LinearRegex.Compiled {
    func run(_ text: UnsafeBufferPointer<UInt8>, _ scratch: inout LinearRegex.Scratch) -> Bool {
        if program.count * (text.count + 1) <= LinearRegex.bitStateLimit { return backtrack(text, &scratch) }
        guard let caps = pike(text) else { return false }
        scratch.caps = caps
        return true
    }

    func backtrack(_ text: UnsafeBufferPointer<UInt8>, _ scratch: inout LinearRegex.Scratch) -> Bool {
        let width = text.count + 1
        // The buffers only grow (patterns of several sizes take turns with one scratch); the
        // part this search uses is cleared in place.
        let words = (splitCount * width + 63) / 64
        if scratch.visited.count < words { scratch.visited = [UInt64](repeating: 0, count: max(words, 2 * scratch.visited.count)) }
        if scratch.caps.count < slots { scratch.caps = [Int](repeating: -1, count: slots) }
        scratch.stack.removeAll(keepingCapacity: true)
        // The search reads only the tables (memory `self` owns, so kept alive here).
        return withExtendedLifetime(self) {
            let (tables, slots) = (self.tables, self.slots)
            return scratch.visited.withUnsafeMutableBufferPointer { all in
                let visited = UnsafeMutableBufferPointer(rebasing: all[0..<words])
                visited.update(repeating: 0)
                return scratch.caps.withUnsafeMutableBufferPointer { all in
                    let caps = UnsafeMutableBufferPointer(rebasing: all[0..<slots])
                    caps.update(repeating: -1)
                    return LinearRegex.search(text, tables, visited, caps, &scratch.stack)
                }
            }
        }
    }

    func pike(_ text: UnsafeBufferPointer<UInt8>) -> [Int]? {
        var current: [LinearRegex.Thread] = []
        var next: [LinearRegex.Thread] = []
        var seen = [Int](repeating: -1, count: program.count)
        var matched: [Int]? = nil
        var generation = 0
        // The epsilon closure of `pc`, depth-first in priority order with a stack of its own
        // (a long chain of splits must not exhaust the thread's stack).
        var work: [(Int, [Int])] = []
        func add(_ list: inout [LinearRegex.Thread], _ pc: Int, _ caps: [Int], _ at: Int) {
            work.append((pc, caps))
            while let (pc, caps) = work.popLast() {
                if seen[pc] == generation { continue }
                seen[pc] = generation
                switch program[pc] {
                case .jump(let t): work.append((t, caps))
                case .split(let a, let b):
                    work.append((b, caps))
                    work.append((a, caps))
                case .save(let slot):
                    var c = caps
                    c[slot] = at
                    work.append((pc + 1, c))
                case .lineStart:
                    if at == 0 || text[at - 1] == 0x0A { work.append((pc + 1, caps)) }
                case .lineEnd:
                    if at == text.count || text[at] == 0x0A { work.append((pc + 1, caps)) }
                default:
                    list.append(LinearRegex.Thread(pc: pc, caps: caps))
                }
            }
        }
        let empty = [Int](repeating: -1, count: slots)
        var at = 0
        add(&current, 0, empty, 0)
        while true {
            generation += 1  // the list of the next position
            var width = at < text.count ? LinearRegex.scalar(text, at).1 : 1
            for t in current {
                switch program[t.pc] {
                case .match:
                    matched = t.caps
                case .scalar, .any, .set:
                    // One scalar per position: a literal run counts here as its first byte.
                    if let n = asciiSets.withUnsafeBufferPointer({ a in literals.withUnsafeBufferPointer { l in
                        sets.withUnsafeBufferPointer { s in LinearRegex.step(code[t.pc], text, at, a, l, s) } } }) { width = n; add(&next, t.pc + 1, t.caps, at + n) }
                    continue
                default:
                    continue
                }
                break  // a match cuts off the threads of lower priority
            }
            if at == text.count { break }
            at += width  // every thread took the same scalar
            swap(&current, &next)
            next.removeAll(keepingCapacity: true)
            // A new start, of the lowest priority, only while nothing has matched (leftmost).
            if matched == nil { add(&current, 0, empty, at) } else if current.isEmpty { break }
        }
        return matched
    }
}
