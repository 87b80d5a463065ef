// The playground: GraphiQL over this server. Queries and mutations go over HTTP; a
// subscription goes over graphql-transport-ws on the same path, with the headers editor's
// headers (an `Authorization` header, say) as the connection's payload, which is where the
// server reads a WebSocket's credentials. Everything here is served by the server itself.
(function () {
  'use strict';

  // The nonce the page's policy allows style elements by: GraphiQL's dialogs add some, and
  // read it from here.
  window.__webpack_nonce__ = document.querySelector('meta[name="style-nonce"]').content;

  var url = new URL(window.location.pathname, window.location.href).href;
  var wsUrl = url.replace(/^http/, 'ws');

  // One WebSocket client per set of headers: changing the headers reconnects with them.
  var current = null;
  function fetcherFor(headers) {
    var key = JSON.stringify(headers || {});
    if (!current || current.key !== key) {
      if (current) current.client.dispose();
      var client = graphqlWs.createClient({ url: wsUrl, connectionParams: headers || {} });
      current = { key: key, client: client, fetcher: GraphiQL.createFetcher({ url: url, wsClient: client }) };
    }
    return current.fetcher;
  }

  function fetcher(params, options) {
    return fetcherFor(options && options.headers)(params, options);
  }

  var firstQuery = [
    '# Welcome! Run this query with the ▶ button',
    '# (or Ctrl-Enter). Reading needs no token.',
    '#',
    '# To write or subscribe, add a header in the',
    '# Headers tab below:',
    '#   { "Authorization": "Bearer <token>" }',
    '# (scripts/dev.sh prints one).',
    '#',
    '# The docs explorer (the book icon, top left)',
    '# lists every type and field.',
    '',
    'query PostDetails($id: ID!) {',
    '  post(id: $id) {',
    '    id title content createdAt commentCount',
    '    author { id username }',
    '    comments(first: 20) {',
    '      nodes {',
    '        id content createdAt',
    '        author { id username }',
    '      }',
    '      pageInfo { hasNextPage endCursor }',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n');

  // The first visit opens on that query, ready to run; later visits keep the user's tabs.
  var firstVisit = true;
  try {
    firstVisit = window.localStorage.getItem('graphiql:tabState') === null;
  } catch (e) {
    // Storage is off (a private window, say): every visit is a first one.
  }
  // A new tab opens on a query that runs as it is.
  var newTab = [
    '# Runs as it is: ▶ or Ctrl-Enter.',
    '{',
    '  users(first: 5) {',
    '    nodes {',
    '      id username',
    '      posts(first: 3) { nodes { id title commentCount } }',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n');
  var props = {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    defaultQuery: newTab
  };
  if (firstVisit) {
    props.query = firstQuery;
    props.variables = '{ "id": "post-0001" }';
  }

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, props));
})();
