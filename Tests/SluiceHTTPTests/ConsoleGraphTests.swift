import Testing
import Foundation
@testable import SluiceHTTP

/// The pipelines page's DAG: columns by depth, one arrow per `after:`, names escaped.
@Suite struct ConsoleGraphTests {
    @Test func pipelinesAreDrawnInColumnsByDepth() {
        let svg = Console.graph([("load", []), ("clean", ["load"]), ("report", ["clean", "load"]), ("<x>", []), ("orphan", ["missing"])])
        // Depth 0: <x>, load, orphan (an unknown `after:` draws no arrow); 1: clean; 2: report.
        #expect(svg.contains(#"<title>load</title><rect x="10" y="52""#), "\(svg)")
        #expect(svg.contains(#"<title>clean</title><rect x="240" y="10""#))
        #expect(svg.contains(#"<title>report</title><rect x="470" y="10""#))
        #expect(svg.components(separatedBy: "class=\"edge\"").count - 1 == 3)
        #expect(svg.contains(#"data-from="load" data-to="clean""#) && svg.contains(#"data-from="clean" data-to="report""#))
        #expect(svg.contains("&lt;x&gt;") && !svg.contains("<x>"))
        // A cycle (refused by validation) still draws, flat.
        #expect(Console.graph([("a", ["b"]), ("b", ["a"])]).contains("<title>b</title>"))
    }
}
