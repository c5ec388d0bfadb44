import Testing
@testable import SluiceCore

struct ExpressionTests {
    func eval(_ text: String, _ row: [String: EValue] = [:]) throws -> EValue {
        ExprEvaluator.eval(try ExprParser.parse(text), row)
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
        #expect(try eval("9223372036854775807 + 1") == .double(9223372036854775808))
    }

    @Test func nullsFollowSQL() throws {
        #expect(try eval("x + 1") == .null)
        #expect(try eval("x = null") == .null)
        #expect(try eval("x is null and y is not null", ["y": .int(1)]) == .bool(true))
        #expect(try eval("null and false") == .bool(false))
        #expect(try eval("null or true") == .bool(true))
        #expect(try eval("null and true") == .null)
        #expect(try eval("coalesce(x, y, 3)", ["y": .text("a")]) == .text("a"))
        #expect(!ExprEvaluator.isTrue(try ExprParser.parse("x > 1"), [:]))
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
        #expect(t.apply(row("c", "x", .null)) == .reject("amount: 'x' is not a float"))
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
}
