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

/// Issue 19: dates written day first, by a declared format or proven by the sample.
@Suite struct DateFormatTests {
    func iso(_ f: DateFormat, _ s: String) -> String? {
        var out: [UInt8] = []
        let ok = Array(s.utf8).withUnsafeBytes { f.normalize($0, into: &out) }
        return ok ? String(decoding: out, as: UTF8.self) : nil
    }

    @Test func formatsRewriteToISO() throws {
        let dmy = try DateFormat("%d/%m/%Y")
        #expect(iso(dmy, "25/12/2024") == "2024-12-25" && iso(dmy, " 1/2/2024 ") == "2024-02-01")
        #expect(iso(dmy, "2024-12-25") == nil && iso(dmy, "25/12/24") == nil && iso(dmy, "25/12/2024x") == nil)
        let ts = try DateFormat("%d/%m/%Y %H:%M:%S")
        #expect(iso(ts, "25/12/2024 10:30") == "2024-12-25 10:30:00")  // seconds are optional
        #expect(iso(ts, "25/12/2024 7:05:09") == "2024-12-25 07:05:09")
        #expect(iso(try DateFormat("%Y%m%d %H%M%S.%f"), "20241225 103000.25") == "2024-12-25 10:30:00.25")
        #expect(throws: SluiceError.self) { try DateFormat("%d/%m") }
        #expect(throws: SluiceError.self) { try DateFormat("%d/%b/%Y") }
    }

    @Test func dayFirstIsProvenNeverGuessed() {
        func sniff(_ values: [String]) -> (Bool, [Int]) {
            var s = SlashDateSniffer(columns: 1)
            for v in values { Array(v.utf8).withUnsafeBytes { s.observe(0, $0) } }
            return (s.dayFirst, s.ambiguousColumns)
        }
        #expect(sniff(["01/02/2024", "25/12/2024"]) == (true, []))
        #expect(sniff(["01/02/2024", "03/04/2024"]) == (false, [0]))  // January or February: never guessed
        #expect(sniff(["12/25/2024", "01/02/2024"]) == (false, []))  // month first
        #expect(sniff(["25/12/2024", "hello"]) == (false, []))
        #expect(sniff(["25/12/2024 10:00", "02/01/2024 08:00:01"]) == (true, []))
    }

    @Test func theBuilderReadsDeclaredFormatsAndISO() throws {
        var d = CSVDialect()
        d.dateFormat = try DateFormat("%d/%m/%Y")
        d.timestampFormat = try DateFormat("%d/%m/%Y %H:%M:%S")
        let schema = TableSchema(columns: [ColumnSchema(name: "d", type: .date), ColumnSchema(name: "t", type: .timestamp)])
        var b = BatchBuilder(schema: schema, capacity: 3)
        b.dates = d
        for (line, (x, y)) in [("25/12/2024", "25/12/2024 10:30"), ("2024-12-26", "26/12/2024"), ("31/02/2024", "x")].enumerated() {
            b.beginRow(line: Int64(line + 2), op: .upsert)
            b.setText(0, x); b.setText(1, y)
            let reject = b.endRow()
            #expect((reject == nil) == (line < 2), "\(line): \(String(describing: reject))")
        }
        let batch = b.take()
        #expect(batch.count == 2)
        #expect(batch.columns[0].ints == [20082, 20083] && batch.columns[1].ints[0] == 20082 * 86_400_000_000 + 37_800_000_000)
    }
}

extension DateFormatTests {
    @Test func theSniffedFormatsEqualTheirPatterns() throws {
        #expect(DateFormat.dayFirst == (try DateFormat("%d/%m/%Y")))
        #expect(DateFormat.dayFirstTime == (try DateFormat("%d/%m/%Y %H:%M:%S")))
    }
}
