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
