import Testing
import SluiceCore

/// Issue 19: the delimiter of a CSV nobody described comes from its name or first lines.
@Suite struct CSVSniffTests {
    func sniff(_ text: String, _ name: String = "f.csv") -> String? {
        CSVDialect.sniff(head: Array(text.utf8), fileName: name).map { $0 == 0x09 ? "tab" : String(UnicodeScalar($0)) }
    }

    @Test func candidatesSeenTheSameNumberOfTimesOnEveryLine() {
        #expect(sniff("id,nome,valor\n1,Ana,10\n2,Bia,20\n") == ",")
        #expect(sniff("id;nome;valor\n1;Ana;1.234,56\n2;Bia;10,5\n") == ";")  // Excel in Brazil: decimal commas vary, semicolons do not
        #expect(sniff("id|nome\n1|Ana\n") == "|")
        #expect(sniff("id\tnome\n1\tAna\n") == "tab")
        #expect(sniff("id\n1\n2\n") == nil)
        #expect(sniff("a,b\n1,2,3\n") == nil)  // ragged: no guess
    }

    @Test func quotedDelimitersAndLineBreaksDoNotCount() {
        #expect(sniff("id;texto\n1;\"a, b, c\"\n2;\"x\ny, z\"\n") == ";")
        #expect(sniff("id,texto\n1,\"a; b\"\n2,\"c; d; e\"\n") == ",")
    }

    @Test func theNameWinsForTabSeparatedFiles() {
        #expect(sniff("a,b\n1,2\n", "x.tsv") == "tab")
        #expect(sniff("a,b\n1,2\n", "x.TAB.gz") == "tab")
    }

    @Test func aPartialLastLineIsNotJudged() {
        #expect(sniff("a;b\n1;2\n3;4;5;6;7") == ";")
    }
}

/// Issue 19: numbers as Brazilian exports write them (`1.234,56`).
@Suite struct LocalNumberTests {
    func normalized(_ s: String, decimal: Character, thousands: Character?) -> String? {
        var d = CSVDialect()
        d.decimal = decimal.asciiValue!
        d.thousands = thousands?.asciiValue
        var out: [UInt8] = []
        let ok = Array(s.utf8).withUnsafeBytes { d.normalizeNumber($0, into: &out) }
        return ok ? String(decoding: out, as: UTF8.self) : nil
    }

    @Test func separatorsBecomePlainNumbers() {
        #expect(normalized("1.234,56", decimal: ",", thousands: ".") == "1234.56")
        #expect(normalized("-10,5", decimal: ",", thousands: nil) == "-10.5")
        #expect(normalized("1,234.5", decimal: ".", thousands: ",") == "1234.5")
        #expect(normalized("1.5", decimal: ",", thousands: nil) == nil)  // a '.' this dialect does not use
        #expect(normalized("12.5", decimal: ",", thousands: ".") == nil)  // groups are three digits
        #expect(normalized("1.234.567,8", decimal: ",", thousands: ".") == "1234567.8")
        #expect(normalized("1234.567", decimal: ",", thousands: ".") == nil)
        #expect(normalized("1,5", decimal: ",", thousands: ".") == "1.5")
    }

    @Test func theBuilderReadsThemAndRejectsOthers() {
        var d = CSVDialect()
        d.decimal = UInt8(ascii: ",")
        d.thousands = UInt8(ascii: ".")
        let schema = TableSchema(columns: [ColumnSchema(name: "v", type: .decimal(precision: 12, scale: 2)), ColumnSchema(name: "n", type: .int64),
                                           ColumnSchema(name: "t", type: .text)])
        var b = BatchBuilder(schema: schema, capacity: 2)
        b.numbers = d
        b.beginRow(line: 2, op: .upsert)
        b.setText(0, "1.234,56"); b.setText(1, "1.000"); b.setText(2, "1.234,56")
        #expect(b.endRow() == nil)
        b.beginRow(line: 3, op: .upsert)
        b.setText(0, "12,3,4"); b.setText(1, "7"); b.setText(2, "x")
        #expect(b.endRow() != nil)
        let batch = b.take()
        #expect(ValueText.render(batch.columns[0], 0) == "1234.56" && batch.columns[1].ints[0] == 1000 && ValueText.render(batch.columns[2], 0) == "1.234,56")
    }
}
