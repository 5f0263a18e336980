// parley: inbox.
"use strict";
