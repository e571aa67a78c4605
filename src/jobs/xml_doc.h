// Reading XML descriptors that come from outside (a XenServer export's
// ova.xml, an OVF envelope) with libxml2: no network, no entity expansion,
// a size limit; elements and attributes are matched by local name, so the
// namespace prefixes a writer chose do not matter.
#pragma once

#include <libxml/tree.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace pampa {

struct XmlDocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using XmlDoc = std::unique_ptr<xmlDoc, XmlDocFree>;

// Parses text; `what` names it in errors ("ova.xml: line 3: ...").
Result<XmlDoc> ParseXml(std::string_view text, const std::string& what);

// The element's name without its namespace prefix.
std::string_view LocalName(const xmlNode* n);
// The child elements of n, in order (all, or those of one local name).
std::vector<xmlNode*> Children(const xmlNode* n, std::string_view name = {});
// The first child element of that local name, or nullptr.
xmlNode* Child(const xmlNode* n, std::string_view name);
// Every element below n (n excluded) of that local name, in document order.
std::vector<xmlNode*> Descendants(const xmlNode* n, std::string_view name);
// The value of the attribute of that local name (any namespace), or "".
std::string Attr(const xmlNode* n, std::string_view name);
// The text content of n, trimmed of surrounding white space.
std::string Text(const xmlNode* n);

}  // namespace pampa
