import Testing
@testable import SluiceCore

struct ExpressionTests {
    func eval(_ text: String, _ row: [String: EValue] = [:]) throws -> EValue {
        try ExprEvaluator.eval(try ExprParser.parse(text), row)
    }

    @Test func arithmeticComparisonsAndLogic() throws {
        #expect(try eval("1 + 2 * 3") == .int(7))
        #expect(try eval("(1 + 2) * 3 - -1") == .int(10))
        #expect(try eval("7 / 2") == .double(3.5))
        #expect(try eval("7 % 3") == .int(1))
        #expect(try eval("1 / 0") == .null)
        #expect(try eval("2.5 >= 2 and not (1 = 2)") == .bool(true))
        #expect(try eval("'b' > 'a' or false") == .bool(true))
        #expect(try eval("x in (1, 2, 3)", ["x": .int(2)]) == .bool(true))
        #expect(try eval("x not in (1, 2)", ["x": .int(2)]) == .bool(false))
        #expect(try eval("'it''s' || ' ' || 3") == .text("it's 3"))
    }

    @Test func nullsFollowSQL() throws {
        #expect(try eval("x + 1") == .null)
        #expect(try eval("x = null") == .null)
        #expect(try eval("x is null and y is not null", ["y": .int(1)]) == .bool(true))
        #expect(try eval("null and false") == .bool(false))
        #expect(try eval("null or true") == .bool(true))
        #expect(try eval("null and true") == .null)
        #expect(try eval("coalesce(x, y, 3)", ["y": .text("a")]) == .text("a"))
        #expect(try !ExprEvaluator.isTrue(try ExprParser.parse("x > 1"), [:]))
    }

    @Test func textFunctionsAndFieldsOfUnknownType() throws {
        let row: [String: EValue] = ["name": .text("  Ana Souza "), "amount": .text("12.5"), "`odd name`": .int(1)]
        #expect(try eval("upper(trim(name))", row) == .text("ANA SOUZA"))
        #expect(try eval("length(trim(name))", row) == .int(9))
        #expect(try eval("substr(trim(name), 5)", row) == .text("Souza"))
        #expect(try eval("substr('abcdef', 2, 3)") == .text("bcd"))
        #expect(try eval("replace(name, ' ', '')", row) == .text("AnaSouza"))
        #expect(try eval("starts_with(trim(name), 'Ana') and contains(name, 'Sou')", row) == .bool(true))
        #expect(try eval("amount * 2", row) == .double(25))  // text that reads as a number
        #expect(try eval("round(amount)", row) == .int(13) || (try eval("round(amount)", row)) == .int(12))
        #expect(try eval("round(2.345, 2)") == .double(2.35) || (try eval("round(2.345, 2)")) == .double(2.34))
        #expect(try eval("if(amount > 10, 'big', 'small')", row) == .text("big"))
        #expect(try eval("abs(-4)") == .int(4))
    }

    /// Every operation on extreme values is checked: a result that does not fit is an error
    /// naming it (the row is rejected), never a trap; division by zero is null.
    @Test func extremeValuesNeverTrap() throws {
        let min = ["x": EValue.int(.min), "m": .int(.max), "big": .double(1e20), "nan": .double(.nan), "inf": .double(.infinity)]
        func failure(_ text: String) -> String? {
            do { _ = try eval(text, min); return nil } catch let e as ExprFailure { return e.message } catch { return "\(error)" }
        }
        #expect(failure("-x") == "-(-9223372036854775808) does not fit in int64")
        #expect(failure("m + 1") == "9223372036854775807 + 1 does not fit in int64")
        #expect(failure("x - 1") == "-9223372036854775808 - 1 does not fit in int64")
        #expect(failure("x * -1") == "-9223372036854775808 * -1 does not fit in int64")
        #expect(failure("abs(x)") == "abs(-9223372036854775808) does not fit in int64")
        #expect(failure("round(1e20 * 3)") == "round(3e+20) does not fit in int64")
        #expect(failure("round(big)") == "round(1e+20) does not fit in int64")
        #expect(failure("round(nan)") == "round(NaN) does not fit in int64")
        #expect(failure("round(inf)") == "round(Infinity) does not fit in int64")
        #expect(try eval("x % -1", min) == .int(0))
        #expect(try eval("x % 0", min) == .null)
        #expect(try eval("x / -1", min) == .double(9223372036854775808))
        #expect(try eval("x / 0", min) == .null)
        #expect(try eval("-m", min) == .int(-Int64.max))
        _ = try eval("round(big, m)", min)
        #expect(try eval("round(big, x)", min) == .double(1e20))
        #expect(try eval("substr('abc', x, m)", min) == .text("abc"))
        #expect(try eval("substr('abc', m, m)", min) == .text(""))
        #expect(try eval("substr('abc', 2, x)", min) == .text(""))
        #expect(try eval("substr('abc', nan)", min) == .null)
        #expect(try eval("false and -x > 0", min) == .bool(false))  // not evaluated, as in SQL
        #expect(try eval("if(x < 0, 0, -x)", min) == .int(0))  // only the branch taken
        #expect(try eval("coalesce(m, -x)", min) == .int(.max))
    }

    @Test func deepExpressionsAreRefusedWhenParsed() throws {
        for text in [String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000),
                     String(repeating: "-", count: 100_000) + "1",
                     String(repeating: "(", count: 200) + "1" + String(repeating: ")", count: 200),
                     String(repeating: "not ", count: 200) + "true",
                     Array(repeating: "1", count: 5_000).joined(separator: " + "),
                     Array(repeating: "a", count: 200).joined(separator: " + ")] {
            #expect(throws: ExprError.self) { try ExprParser.parse(text) }
        }
        #expect(try ExprParser.parse(Array(repeating: "a", count: 100).joined(separator: " + ")).depth == 100)
    }

    @Test func aRowWhoseValueDoesNotFitIsRejectedWithTheReason() throws {
        var t = RowTransformer(steps: [.derive([Pair("y", try ExprParser.parse("round(1e20 * x)"))]), .filter(try ExprParser.parse("-z > 0"))])
        #expect(t.apply(PipelineRow(fields: ["x"], values: ["x": .int(1), "z": .int(-1)])) == .reject("derive: y: round(1e+20) does not fit in int64"))
        #expect(t.apply(PipelineRow(fields: ["x"], values: ["x": .double(1e-30), "z": .int(.min)])) == .reject("filter: -(-9223372036854775808) does not fit in int64"))
    }

    @Test func parseErrorsSayWhere() {
        for (text, needle) in [("1 +", "expected a value"), ("(1", "expected ')'"), ("a ! b", "unexpected character"),
                               ("'open", "unterminated"), ("a b", "unexpected 'b'"), ("x is 3", "expected null")] {
            do {
                _ = try ExprParser.parse(text)
                Issue.record("'\(text)' should not parse")
            } catch {
                #expect(error.message.contains(needle), "\(text): \(error)")
            }
        }
    }

    @Test func typeChecks() {
        func check(_ text: String, _ fields: [String: EType]?) -> String? {
            guard let e = try? ExprParser.parse(text) else { return "parse" }
            if case .failure(let m) = ExprChecker.type(e, fields: fields) { return m.message }
            return nil
        }
        #expect(check("a > 1 and b = 'x'", nil) == nil)  // unknown fields: any
        #expect(check("upper(a) > 5", nil)?.contains("cannot compare text with int") == true)
        #expect(check("lower(3)", nil)?.contains("must be text") == true)
        #expect(check("a + 'x'", ["a": .float])?.contains("needs numbers") == true)
        #expect(check("nope(1)", nil)?.contains("unknown function") == true)
        #expect(check("substr('a')", nil)?.contains("takes 2 to 3 arguments") == true)
        #expect(check("b > 1", ["a": .int])?.contains("no field 'b'") == true)
        #expect(check("coalesce(a, 'x')", ["a": .int])?.contains("share a type") == true)
    }

    @Test func stepsAreCheckedAndApplied() throws {
        let steps: [PipelineStep] = [
            .cast([Pair("amount", .float), Pair("qty", .int)]),
            .filter(try ExprParser.parse("amount > 0")),
            .derive([Pair("total", try ExprParser.parse("amount * coalesce(qty, 1)"))]),
            .rename([Pair("cust", "customer")]),
            .dedupe(["customer"]),
            .select(["customer", "total"]),
        ]
        #expect(try Pipeline.check(steps) == ["customer", "total"])
        #expect(throws: StepError.self) { try Pipeline.check(steps + [.filter(try ExprParser.parse("amount > 1"))]) }  // dropped by select
        #expect(throws: StepError.self) { try Pipeline.check([.cast([Pair("a", .int)]), .filter(try ExprParser.parse("a + 1"))]) }  // not boolean
        var t = RowTransformer(steps: steps)
        func row(_ c: String, _ a: String, _ q: EValue) -> PipelineRow {
            PipelineRow(fields: ["cust", "amount", "qty"], values: ["cust": .text(c), "amount": .text(a), "qty": q])
        }
        #expect(t.apply(row("a", "2.5", .text("4"))) == .keep(PipelineRow(fields: ["customer", "total"], values: ["customer": .text("a"), "total": .double(10)])))
        #expect(t.apply(row("b", "-1", .null)) == .drop)
        #expect(t.apply(row("c", "x", .null)) == .reject("cast: amount: 'x' is not a float"))
        #expect(t.apply(row("a", "9", .null)) == .drop)  // a duplicate customer
        #expect(t.apply(row("d", "3", .null)) == .keep(PipelineRow(fields: ["customer", "total"], values: ["customer": .text("d"), "total": .double(3)])))
    }

    @Test func explodeAndFlattenNestedJSON() throws {
        let steps: [PipelineStep] = [.flatten("customer"), .explode("items"), .filter(try ExprParser.parse("items_qty > 1"))]
        #expect(try Pipeline.check(steps) == nil)  // the fields now depend on the data
        var t = RowTransformer(steps: steps)
        let order = PipelineRow(fields: ["id", "customer", "items"], values: [
            "id": .int(7),
            "customer": .text(#"{"name": "Ana", "address": {"city": "Recife"}}"#),
            "items": .text(#"[{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 5}]"#),
        ])
        let out = t.run(order)
        let kept = out.compactMap { o -> PipelineRow? in if case .keep(let r) = o { return r }; return nil }
        #expect(kept.map { $0.values["items_sku"] } == [.text("A"), .text("C")] && out.count == 3)
        #expect(kept[0].values["customer_name"] == .text("Ana") && kept[0].values["customer_address_city"] == .text("Recife"))
        #expect(kept[0].fields == ["id", "customer_name", "customer_address_city", "items_sku", "items_qty"])
        // Nothing to explode: no row. Scalars explode into the field itself.
        #expect(t.run(PipelineRow(fields: ["id", "items"], values: ["id": .int(1), "items": .null])) == [.drop])
        var tags = RowTransformer(steps: [.explode("tags")])
        #expect(tags.run(PipelineRow(fields: ["tags"], values: ["tags": .text(#"["x", "y"]"#)])).count == 2)
    }

    /// Steps are compiled per row shape: rows of different shapes through one transformer,
    /// a rename onto a field that exists, a derived field read by the next, a missing field.
    @Test func rowsOfManyShapesThroughOneTransformer() throws {
        let steps: [PipelineStep] = [
            .derive([Pair("total", try ExprParser.parse("price * qty")), Pair("double", try ExprParser.parse("total * 2"))]),
            .rename([Pair("name", "id")]),
            .filter(try ExprParser.parse("double is null or double < 100")),
            .select(["id", "total", "double", "note"]),
        ]
        var t = RowTransformer(steps: steps)
        let a = PipelineRow(fields: ["id", "name", "price", "qty"], slots: [.int(1), .text("a"), .int(2), .int(3)])
        let b = PipelineRow(fields: ["qty", "price", "name"], slots: [.int(4), .double(0.5), .text("b")])
        let c = PipelineRow(fields: ["name", "note"], slots: [.text("c"), .text("hi")])
        #expect(t.apply(a) == .keep(PipelineRow(fields: ["id", "total", "double", "note"], slots: [.text("a"), .int(6), .int(12), .null])))
        #expect(t.apply(b) == .keep(PipelineRow(fields: ["id", "total", "double", "note"], slots: [.text("b"), .double(2), .double(4), .null])))
        #expect(t.apply(c) == .keep(PipelineRow(fields: ["id", "total", "double", "note"], slots: [.text("c"), .null, .null, .text("hi")])))
        #expect(t.apply(PipelineRow(fields: ["price", "qty"], slots: [.int(50), .int(2)])) == .drop)
        // Back to the first shape: the plan for it is made again and gives the same row.
        #expect(t.apply(a) == .keep(PipelineRow(fields: ["id", "total", "double", "note"], slots: [.text("a"), .int(6), .int(12), .null])))
        // Named values: a field not listed in `fields` still reaches the steps.
        #expect(PipelineRow(fields: ["x"], values: ["x": .int(1), "z": .int(2)]).fields == ["x", "z"])
    }

    /// A parse step on a field that some rows lack or hold null: no match (the empty text),
    /// so a reject naming the field; captures of a pattern that did not match are null.
    @Test func parseOverRowsOfOtherShapes() throws {
        let steps: [PipelineStep] = [.parse(field: "line", patterns: [try LinearRegex("^(?<k>\\w+)=(?<v>\\d+)$"), try LinearRegex("^(?<k>\\w+)$")])]
        var t = RowTransformer(steps: steps)
        #expect(t.apply(PipelineRow(fields: ["line"], slots: [.text("a=1")])) == .keep(PipelineRow(fields: ["line", "k", "v"], slots: [.text("a=1"), .text("a"), .text("1")])))
        #expect(t.apply(PipelineRow(fields: ["n", "line"], slots: [.int(1), .text("b")])) == .keep(PipelineRow(fields: ["n", "line", "k", "v"], slots: [.int(1), .text("b"), .text("b"), .null])))
        #expect(t.apply(PipelineRow(fields: ["other"], slots: [.int(1)])) == .reject("parse: no pattern matches line ''"))
        #expect(t.apply(PipelineRow(fields: ["line"], slots: [.text("a=b")])) == .reject("parse: no pattern matches line 'a=b'"))
    }

    /// Captures nothing reads later are never made (a `select` drops them), and every one that
    /// is read still arrives: through a derive, a filter, a cast, a rename that replaces another
    /// field, and the output. The plan's marks say which, and the rows are unchanged.
    @Test func capturesNothingReadsAreNotMade() throws {
        let pattern = try LinearRegex("^(?<a>\\w+) (?<b>\\d+) (?<c>\\w+) (?<d>[\\d.]+) (?<e>\\w+)$")
        let steps: [PipelineStep] = [
            .parse(field: "line", patterns: [pattern]),
            .derive([Pair("n", try ExprParser.parse("to_number(b) * 2"))]),
            .filter(try ExprParser.parse("c <> 'skip'")),
            .cast([Pair("d", .int)]),
            .rename([Pair("e", "a")]),  // e takes a's place: a's capture is gone unread
            .select(["n", "a", "d"]),
        ]
        var t = RowTransformer(steps: steps)
        let row = PipelineRow(fields: ["line"], slots: [.text("x 21 y 7 z")])
        #expect(t.apply(row) == .keep(PipelineRow(fields: ["n", "a", "d"], slots: [.double(42), .text("z"), .int(7)])))
        #expect(t.apply(PipelineRow(fields: ["line"], slots: [.text("x 1 skip 2 z")])) == .drop)
        #expect(t.apply(PipelineRow(fields: ["line"], slots: [.text("x 1 y 2.5 z")])) == .reject("cast: d: '2.5' is not an int"))
        let plan = try #require(t.plans[0]).plan
        let uses = plan.ops.compactMap { op -> [RowTransformer.CaptureUse]? in if case .parse(let p) = op { p.uses } else { nil } }
        #expect(uses == [[.unused, .text, .text, .text, .text]], "a is replaced by e before anything reads it")
        // Without the select every capture is output, so every one is made.
        var all = RowTransformer(steps: [steps[0]])
        #expect(all.apply(row) == .keep(PipelineRow(fields: ["line", "a", "b", "c", "d", "e"], slots: [.text("x 21 y 7 z"), .text("x"), .text("21"), .text("y"), .text("7"), .text("z")])))
    }

    /// A capture only `to_number` reads is made a number straight from its bytes, and the
    /// rows are exactly those made through its text (a filter that reads the text keeps the
    /// slow path): numbers, decimal commas, blanks around, not-numbers and their rejects,
    /// a capture no pattern set.
    @Test func capturesOnlyToNumberReadsAreMadeNumbers() throws {
        let patterns = [try LinearRegex("^(?<a>[^;]*);(?<b>[^;]*);(?<c>[^;]*)$"), try LinearRegex("^(?<b>[^;]*)$")]
        let derive = PipelineStep.derive([Pair("x", try ExprParser.parse("to_number(a)")), Pair("y", try ExprParser.parse("to_number(b, ',')")),
                                          Pair("z", try ExprParser.parse("to_number(c) + 1"))])
        let select = PipelineStep.select(["x", "y", "z"])
        var fast = RowTransformer(steps: [.parse(field: "line", patterns: patterns), derive, select])
        var slow = RowTransformer(steps: [.parse(field: "line", patterns: patterns), .filter(try ExprParser.parse("a <> 'zz' OR b <> 'zz' OR a IS NULL")), derive, select])
        let lines = ["1.5;2,25;3", " -7 ;1,5 ;1e3", "x1;2;3", "1;2.5;3", "1;2;", "4,5", "1e400;1;1", "9;;1"]
        for line in lines {
            let row = PipelineRow(fields: ["line"], slots: [.text(line)])
            #expect(fast.apply(row) == slow.apply(row), "\(line)")
        }
        #expect(fast.apply(PipelineRow(fields: ["line"], slots: [.text("1.5;2,25;3")])) == .keep(PipelineRow(fields: ["x", "y", "z"], slots: [.double(1.5), .double(2.25), .double(4)])))
        #expect(fast.apply(PipelineRow(fields: ["line"], slots: [.text("x1;2;3")])) == .reject("derive: x: to_number: 'x1' is not a number"))
        let uses = try #require(fast.plans[0]).plan.ops.compactMap { op -> [RowTransformer.CaptureUse]? in if case .parse(let p) = op { p.uses } else { nil } }
        #expect(uses == [[.number(decimal: UInt8(ascii: ".")), .number(decimal: UInt8(ascii: ",")), .text]])
        let slowUses = try #require(slow.plans[0]).plan.ops.compactMap { op -> [RowTransformer.CaptureUse]? in if case .parse(let p) = op { p.uses } else { nil } }
        #expect(slowUses == [[.text, .text, .text]])
        // `to_number` of a slot is an op of its own (z's `+ 1` keeps the general derive).
        let numbers = try #require(fast.plans[0]).plan.ops.filter { if case .number = $0 { true } else { false } }.count
        #expect(numbers == 2)
    }

    /// A text record handed over as bytes gives exactly the outcomes of its row of text:
    /// where the first step parses `line` and nothing later reads it, the bytes are matched
    /// and no text is made (``RowTransformer/Plan/parsesLine``); otherwise the row is made.
    /// Kept, dropped and rejected records interleave (the arrays kept from row to row must
    /// not leak values), and bytes that are not UTF-8 take the row's path (their text repaired).
    @Test func textRecordsAsBytesGiveTheRowsOfTheirText() throws {
        let parse = PipelineStep.parse(field: "line", patterns: [try LinearRegex("^(?<k>\\w+)=(?<v>[\\d,]+)(?<rest>.*)$"), try LinearRegex("^(?<k>\\w+)$")])
        let derive = PipelineStep.derive([Pair("n", try ExprParser.parse("to_number(v, ',')"))])
        let cases: [([PipelineStep], Bool)] = [
            ([parse, derive, .filter(try ExprParser.parse("n IS NULL OR n < 100")), .select(["k", "n"])], true),
            ([parse, derive, .select(["n", "k", "rest"])], true),
            ([parse], false),  // the output holds line
            ([parse, .filter(try ExprParser.parse("line <> 'a=1'")), .select(["k"])], false),  // a filter reads it
            ([.filter(try ExprParser.parse("line <> 'a=1'")), parse, .select(["k"])], false),
            ([.select(["k"])], false),
            // Two parse steps over line (the second finds the rest), then line dropped.
            ([parse, .parse(field: "line", patterns: [try LinearRegex("(?<tail>[a-z]+)$")]), .select(["k", "tail"])], true),
            ([parse, .parse(field: "line", patterns: [try LinearRegex("(?<tail>[a-z]+)$")]), derive, .select(["tail", "line"])], false),
            ([parse, .derive([Pair("line", try ExprParser.parse("k"))]), .select(["line"])], false),  // line written
        ]
        let records: [[UInt8]] = ["a=1", "b=250", "c", "d=7,5 tail", "=bad", "", "e=1\nf=2", "x=3"].map { Array($0.utf8) }
            + [[0x67, 0x3D, 0x34, 0xFF], [0x68, 0xC3]]  // not UTF-8: g=4\u{FFFD}, h\u{FFFD}
        for (steps, parsesLine) in cases {
            var bytes = RowTransformer(steps: steps)
            var text = RowTransformer(steps: steps)
            for round in 0..<2 {
                for r in records {
                    var a: [RowTransformer.Outcome] = []
                    var b: [RowTransformer.Outcome] = []
                    r.withUnsafeBufferPointer { bytes.run(text: $0, into: &a) }
                    text.run(PipelineRow(fields: ["line"], slots: [.text(String(decoding: r, as: UTF8.self))]), into: &b)
                    #expect(a == b, "\(steps.count) steps, round \(round), \(String(decoding: r, as: UTF8.self))")
                }
            }
            #expect(bytes.plans[0]?.plan.parsesLine == parsesLine, "\(steps)")
        }
    }
}
